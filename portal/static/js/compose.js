// The compose page of a prescription: the arrow keys between the drug search box and its
// results, the SIG builder or the written-out directions (one shown at a time), the note
// counter, and the current draft version handed to the signing form. Loaded with a CSP
// nonce; no inline handlers. Safe to load twice.
(function () {
  "use strict";
  if (window.portalComposeLoaded) return;
  window.portalComposeLoaded = true;

  function choices() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-drug-choice]"));
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    var target = event.target;
    var list = choices();
    if (!list.length) return;
    if (target.id === "drug_query" && event.key === "ArrowDown") {
      event.preventDefault();
      list[0].focus();
      return;
    }
    var index = list.indexOf(target);
    if (index < 0) return;
    event.preventDefault();
    if (event.key === "ArrowDown" && index < list.length - 1) list[index + 1].focus();
    if (event.key === "ArrowUp") {
      if (index === 0) document.getElementById("drug_query").focus();
      else list[index - 1].focus();
    }
  });

  function showDirections() {
    var box = document.getElementById("sig-write_out");
    if (!box) return;
    var builder = document.querySelector("[data-sig-builder]");
    var written = document.querySelector("[data-sig-written]");
    if (builder) builder.hidden = box.checked;
    if (written) written.hidden = !box.checked;
  }

  function countNote() {
    var field = document.querySelector("[data-counted]");
    if (!field) return;
    var out = document.getElementById(field.getAttribute("data-counted"));
    var limit = field.getAttribute("maxlength") || "210";
    if (out) out.textContent = field.value.length + " of " + limit + " characters";
  }

  document.addEventListener("change", function (event) {
    if (event.target.id === "sig-write_out") showDirections();
  });
  document.addEventListener("input", function (event) {
    if (event.target.hasAttribute && event.target.hasAttribute("data-counted")) countNote();
  });
  document.addEventListener("submit", function (event) {
    var copy = event.target.querySelector("[data-version-copy]");
    var current = document.getElementById("draft-version");
    if (copy && current) copy.value = current.value;
  });
  document.addEventListener("DOMContentLoaded", function () {
    showDirections();
    countNote();
  });
  if (document.readyState !== "loading") {
    showDirections();
    countNote();
  }
})();
