// The ICD-10-CM picker of the problem forms: htmx fetches matching codes as the user types;
// this script lets the arrow keys move through them and Enter (or a click) pick one, which
// fills the code field. Loaded with a CSP nonce; no inline handlers. Safe to load twice.
(function () {
  "use strict";
  if (window.portalListsLoaded) return;
  window.portalListsLoaded = true;

  function pickerOf(element) {
    return element.closest("[data-icd10-picker]");
  }

  function options(picker) {
    return Array.prototype.slice.call(picker.querySelectorAll("[role='option']"));
  }

  function codeField(picker) {
    // The code field follows the picker inside the same form.
    return picker.parentElement.querySelector("input[name$='icd10_code']");
  }

  function highlight(picker, index) {
    var input = picker.querySelector("[data-icd10-query]");
    options(picker).forEach(function (option, i) {
      option.setAttribute("aria-selected", i === index ? "true" : "false");
      option.classList.toggle("active", i === index);
      if (i === index) {
        input.setAttribute("aria-activedescendant", option.id);
        option.scrollIntoView({ block: "nearest" });
      }
    });
    if (index < 0) input.removeAttribute("aria-activedescendant");
  }

  function close(picker) {
    var input = picker.querySelector("[data-icd10-query]");
    picker.querySelector("[data-icd10-results]").innerHTML = "";
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  }

  function pick(picker, option) {
    var field = codeField(picker);
    var input = picker.querySelector("[data-icd10-query]");
    if (field) field.value = option.getAttribute("data-code");
    input.value = option.getAttribute("data-code") + " " + option.getAttribute("data-description");
    close(picker);
    if (field) field.focus();
  }

  document.addEventListener("keydown", function (event) {
    var input = event.target;
    if (!input || !input.matches || !input.matches("[data-icd10-query]")) return;
    var picker = pickerOf(input);
    var list = options(picker);
    var index = list.findIndex(function (o) {
      return o.getAttribute("aria-selected") === "true";
    });
    if (event.key === "ArrowDown" && list.length) {
      event.preventDefault();
      highlight(picker, Math.min(index + 1, list.length - 1));
    } else if (event.key === "ArrowUp" && list.length) {
      event.preventDefault();
      highlight(picker, Math.max(index - 1, 0));
    } else if (event.key === "Enter") {
      // Enter in the search box picks; it never sends the form half filled.
      event.preventDefault();
      if (list.length) pick(picker, list[Math.max(index, 0)]);
    } else if (event.key === "Escape" && list.length) {
      event.preventDefault();
      close(picker);
    }
  });

  document.addEventListener("click", function (event) {
    // An option of the results, or one of the prescriber's favourites shown below them.
    var option =
      event.target.closest &&
      event.target.closest("[data-icd10-picker] [role='option'], [data-icd10-picker] [data-icd10-favourite]");
    if (option) pick(pickerOf(option), option);
  });

  // New results: give the options ids (for aria-activedescendant) and say the list is open.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (!target || !target.matches("[data-icd10-results]")) return;
    var picker = pickerOf(target);
    var list = options(picker);
    list.forEach(function (option, i) {
      option.id = target.id + "-option-" + i;
    });
    picker.querySelector("[data-icd10-query]").setAttribute("aria-expanded", list.length ? "true" : "false");
  });
})();
