// The compose page of a prescription: the SIG builder or the written-out directions (one
// shown at a time), the note counter, and the current draft version handed to the signing
// form. The drug search's keyboard is listbox.js's. Loaded with a CSP nonce; no inline
// handlers. Safe to load twice.
(function () {
  "use strict";
  if (window.portalComposeLoaded) return;
  window.portalComposeLoaded = true;

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
  // Escape closes an open confirmation (a <details data-confirm>, e.g. "Remove…" of a
  // preferred pharmacy) and gives its summary the focus back: nothing was done.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !event.target.closest) return;
    var open = event.target.closest("details[data-confirm][open]");
    if (!open) return;
    event.preventDefault();
    open.open = false;
    open.querySelector("summary").focus();
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
