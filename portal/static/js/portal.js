// Practice Portal's own script: CSRF for htmx, keyboard use of the patient search.
// Loaded with a CSP nonce; it uses no eval and no inline handlers.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // Every htmx request carries the CSRF token in a header.
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRFToken"] = csrfToken();
  });

  // The sticky patient banner's height as the page's scroll padding (portal.css): measured,
  // since a long allergy list wraps it onto more lines, and again whenever it changes.
  function trackBannerHeight() {
    var banner = document.getElementById("patient-banner");
    if (!banner) return;
    var root = document.documentElement;
    function measure() {
      root.style.setProperty("--patient-banner-height", banner.offsetHeight + "px");
    }
    measure();
    if (window.ResizeObserver) new ResizeObserver(measure).observe(banner);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", trackBannerHeight);
  } else {
    trackBannerHeight();
  }

  // "/" jumps to the patient search from anywhere but a text field.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target.closest("input, textarea, select, [contenteditable]")) return;
    var box = document.getElementById("patient-search-input");
    if (box) {
      event.preventDefault();
      box.focus();
      box.select();
    }
  });

  // Arrow keys move through the results, Enter opens the highlighted (or the first) one.
  function options() {
    return Array.prototype.slice.call(
      document.querySelectorAll("#patient-search-results [role='option']")
    );
  }

  function highlight(index) {
    var list = options();
    var input = document.getElementById("patient-search-input");
    list.forEach(function (option, i) {
      option.setAttribute("aria-selected", i === index ? "true" : "false");
    });
    if (list[index]) {
      input.setAttribute("aria-activedescendant", list[index].id);
      list[index].scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function selectedIndex() {
    return options().findIndex(function (option) {
      return option.getAttribute("aria-selected") === "true";
    });
  }

  document.addEventListener("keydown", function (event) {
    if (!event.target || event.target.id !== "patient-search-input") return;
    var list = options();
    var index = selectedIndex();
    var input = event.target;
    if (event.key === "ArrowDown" && list.length) {
      event.preventDefault();
      highlight(Math.min(index + 1, list.length - 1));
    } else if (event.key === "ArrowUp" && list.length) {
      event.preventDefault();
      highlight(Math.max(index - 1, 0));
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (list.length) {
        window.location.assign(list[Math.max(index, 0)].getAttribute("href"));
      }
    } else if (event.key === "Escape") {
      document.getElementById("patient-search-results").innerHTML = "";
      input.setAttribute("aria-expanded", "false");
    }
  });

  // After new results arrive, the first one is highlighted so Enter opens it.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "patient-search-results") {
      var input = document.getElementById("patient-search-input");
      var count = options().length;
      input.setAttribute("aria-expanded", count ? "true" : "false");
      if (count) highlight(0);
    }
  });
})();
