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
  // --- Nothing typed is lost to a click ------------------------------------------------
  // The draft form saves itself 600 ms after the last key or when a field is left (htmx,
  // hx-sync "queue last"). A click right after typing ("Review and sign", a preferred
  // pharmacy, a favourite, any link away) would otherwise race that save: the next page
  // read the draft before the save landed, or the save reached a draft the click had moved
  // on and was refused (409), and the last keys were lost. So such a click first waits for
  // the saves under way, then saves what is on the page now if that differs from the last
  // save that succeeded, and only then goes on. (Notes sign through hx-sync behind the
  // editor and send its text with the signature; here most clicks are plain page loads and
  // a link, which hx-sync cannot hold back, hence the wait in script.) Once the click goes
  // on to another page, later autosaves (the typing delay running out) are not sent: they
  // would only repeat what was saved, and could reach a draft the click changed.
  var saving = { inFlight: 0, saved: null, failed: null, waiters: [], leaving: false };

  function draftForm() {
    return document.getElementById("draft-form");
  }

  // What the prescriber typed, without what the server sets (version, alerts key, token).
  function typed(form) {
    var parts = [];
    new FormData(form).forEach(function (value, name) {
      if (name === "version" || name === "alerts_key" || name === "csrf_token") return;
      parts.push(encodeURIComponent(name) + "=" + encodeURIComponent(value));
    });
    return parts.join("&");
  }

  function isDraftSave(event) {
    var form = draftForm();
    return form && event.detail && event.detail.elt === form;
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (!isDraftSave(event)) return;
    if (saving.leaving) {
      event.preventDefault();
      return;
    }
    saving.inFlight += 1;
    event.detail.xhr.portalTyped = typed(draftForm());
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    if (!isDraftSave(event)) return;
    saving.inFlight = Math.max(0, saving.inFlight - 1);
    var xhr = event.detail.xhr;
    if (xhr && xhr.status === 200) {
      saving.saved = xhr.portalTyped;
      saving.failed = null;
    } else {
      saving.failed = xhr ? xhr.status : 0;
    }
    // After htmx has issued a save waiting in its queue, if any (it does so right after
    // this event), see whether everything is answered.
    window.setTimeout(function () {
      if (saving.inFlight) return;
      var waiters = saving.waiters;
      saving.waiters = [];
      waiters.forEach(function (resolve) {
        resolve();
      });
    }, 0);
  });

  function settled() {
    return new Promise(function (resolve) {
      if (!saving.inFlight) resolve();
      else saving.waiters.push(resolve);
    });
  }

  // Resolves true once what is on the page is saved, false when the server refused it (its
  // answer is in the status line) or could not be reached.
  function flush(form, rounds) {
    return settled().then(function () {
      if (typed(form) === saving.saved) return true;
      if (rounds <= 0 || (saving.failed !== null && rounds < 3)) return false;
      htmx.trigger(form, "change");
      return flush(form, rounds - 1);
    });
  }

  function notSaved(form) {
    var status = document.getElementById("draft-status");
    if (!status || saving.failed === 409 || saving.failed === 422) return; // said by the server
    status.className = "small text-danger";
    status.setAttribute("role", "alert");
    status.textContent =
      "Not saved — the server could not be reached. What you typed is still here; " +
      "click again to go on without it.";
  }

  // A second click after a refused save goes on: the prescriber has read why.
  var refusedAt = null;

  function holdUntilSaved(event, goOn) {
    var form = draftForm();
    if (!form || saving.leaving) return false;
    var now = typed(form);
    if (!saving.inFlight && now === saving.saved) return false;
    if (refusedAt !== null && refusedAt === now) return false;
    event.preventDefault();
    event.stopPropagation();
    flush(form, 3).then(function (ok) {
      if (ok) {
        goOn();
      } else {
        refusedAt = typed(form);
        form.setAttribute("data-click-held", "refused"); // the next click goes on
        notSaved(form);
      }
    });
    return true;
  }

  // Forms: every one but the draft's own, its searches and "Discard draft"
  // (data-draft-independent). Caught before htmx sees them (capture), sent again once saved.
  var released = [];
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      var draft = draftForm();
      if (!draft || form === draft || form.hasAttribute("data-draft-independent")) return;
      var again = released.indexOf(form);
      if (again >= 0) {
        released.splice(again, 1);
      } else {
        var submitter = event.submitter;
        var held = holdUntilSaved(event, function () {
          released.push(form);
          if (submitter) form.requestSubmit(submitter);
          else form.requestSubmit();
        });
        if (held) return;
      }
      if (!form.hasAttribute("hx-post")) saving.leaving = true; // a page load follows
    },
    true
  );

  // Links away from the page ("Review and sign", the banner's, the menu's).
  document.addEventListener(
    "click",
    function (event) {
      if (event.defaultPrevented || event.button !== 0) return;
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
      var link = event.target.closest && event.target.closest("a[href]");
      if (!link || link.target || link.hasAttribute("download")) return;
      if (link.hasAttribute("hx-get") || link.hasAttribute("hx-post")) return; // no page load
      var url = new URL(link.href, window.location.href);
      if (url.origin !== window.location.origin) return;
      if (url.pathname === window.location.pathname && url.hash) return; // within the page
      var held = holdUntilSaved(event, function () {
        saving.leaving = true;
        window.location.assign(url.href);
      });
      if (!held && draftForm()) saving.leaving = true;
    },
    true
  );

  // Back to this page from the history: it saves again.
  window.addEventListener("pageshow", function () {
    saving.leaving = false;
  });

  function rememberLoaded() {
    var form = draftForm();
    if (form && saving.saved === null) saving.saved = typed(form);
  }

  document.addEventListener("DOMContentLoaded", function () {
    showDirections();
    countNote();
    rememberLoaded();
  });
  if (document.readyState !== "loading") {
    showDirections();
    countNote();
    rememberLoaded();
  }
})();
