// The allergy form's substance suggestions follow the kind of substance: drugs for "Drug",
// the shipped drug classes for "Drug class" (both lists are on the page; the field names them
// in data-drug-list / data-class-list). No inline handlers (CSP). Safe to load twice.
(function () {
  "use strict";
  if (window.portalAllergiesLoaded) return;
  window.portalAllergiesLoaded = true;

  function follow(kind) {
    var substance = kind.form && kind.form.querySelector("input[data-class-list]");
    if (!substance) return;
    var isClass = kind.value === "drug_class";
    var list = isClass ? substance.getAttribute("data-class-list") : substance.getAttribute("data-drug-list");
    if (kind.value === "drug" || isClass) {
      substance.setAttribute("list", list);
    } else {
      substance.removeAttribute("list"); // foods and the environment have no list
    }
  }

  function all() {
    document.querySelectorAll("select[name='substance_kind']").forEach(follow);
  }

  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("select[name='substance_kind']")) follow(event.target);
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", all);
  else all();
})();
