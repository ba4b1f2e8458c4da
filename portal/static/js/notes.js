// The note editor: snippet expansion as you type, and the choices of a save conflict.
// Snippets arrive as JSON in the editor form's data-snippets attribute (CSP: no inline script).
(function () {
  "use strict";

  var EXPANDING_KEYS = { " ": " ", Enter: "\n", Tab: "" };

  function snippetsOf(textarea) {
    var form = textarea.closest("[data-snippets]");
    if (!form) return {};
    if (!form.__snippets) {
      try {
        form.__snippets = JSON.parse(form.getAttribute("data-snippets") || "{}");
      } catch (error) {
        form.__snippets = {};
      }
    }
    return form.__snippets;
  }

  // Tell htmx (and anything else listening) that the text changed, so it is saved.
  function changed(textarea) {
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
  }

  // When the word before the cursor is a trigger and the key ends the word, replace it by
  // the snippet's text (followed by what the key would have typed).
  document.addEventListener("keydown", function (event) {
    var textarea = event.target;
    if (!textarea.classList || !textarea.classList.contains("note-editor")) return;
    if (!(event.key in EXPANDING_KEYS) || event.ctrlKey || event.metaKey || event.altKey) return;
    var end = textarea.selectionStart;
    if (end !== textarea.selectionEnd) return;
    var before = textarea.value.slice(0, end);
    var match = /(^|\s)(\.[A-Za-z0-9]{1,31})$/.exec(before);
    if (!match) return;
    var snippets = snippetsOf(textarea);
    var trigger = match[2];
    if (!Object.prototype.hasOwnProperty.call(snippets, trigger)) return;
    event.preventDefault();
    var start = end - trigger.length;
    textarea.setRangeText(snippets[trigger] + EXPANDING_KEYS[event.key], start, end, "end");
    changed(textarea);
  });

  // An autosave the server did not answer with a status line (409 and 422 are swapped in
  // like a success: see htmx-config in base.html): without this the editor would go on
  // saying "Saved at ..." about an older text. Say plainly that this text is not saved.
  function notSaved(textarea, why) {
    var id = textarea.id.replace(/-text$/, "");
    var status = document.getElementById(id + "-status");
    if (!status) return;
    status.className = "note-status small mt-1 text-danger";
    status.setAttribute("role", "alert");
    status.textContent =
      "Not saved — " + why + " Your text is still here: copy it somewhere safe " +
      "before leaving or reloading this page.";
  }

  function refusal(code) {
    if (code === 413) return "the server refused it as too large (413).";
    if (code === 400 || code === 401 || code === 403) {
      return "the server refused it (" + code + "): your session may have ended.";
    }
    if (code >= 500) return "the server had a problem (" + code + "); it is tried again as you type.";
    return "the server refused it (" + code + ").";
  }

  // "Sign note" refused the same way: the note is not signed, and the page must say so.
  function notSigned(form, why) {
    var status = document.getElementById(form.getAttribute("hx-target").replace(/^#/, ""));
    if (!status) return;
    status.className = "note-status small mt-1 text-danger";
    status.setAttribute("role", "alert");
    status.textContent = "Not signed — " + why + " The note is still a draft.";
  }

  function editorOf(event) {
    var elt = event.detail && event.detail.elt;
    return elt && elt.classList && elt.classList.contains("note-editor") ? elt : null;
  }

  function signFormOf(event) {
    var elt = event.detail && event.detail.elt;
    return elt && elt.classList && elt.classList.contains("note-sign") ? elt : null;
  }

  function failed(event, why) {
    var textarea = editorOf(event);
    if (textarea) notSaved(textarea, why);
    var form = signFormOf(event);
    if (form) notSigned(form, why.replace(/; it is tried again as you type\./, "."));
  }

  // Signing ends autosaving. The sign form waits for a save already under way (hx-sync on
  // the editor, so it signs the saved version with the latest text), and from then on the
  // editor sends nothing: an autosave still waiting (the typing delay, the blur of clicking
  // "Sign note") would reach a signed note and be refused (409). A refused signature
  // gives the editor back.
  function editorOfSignForm(form) {
    var status = (form.getAttribute("hx-target") || "").replace(/^#/, "");
    return document.getElementById(status.replace(/-status$/, "-text"));
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = signFormOf(event);
    if (form) {
      var signing = editorOfSignForm(form);
      if (signing) signing.setAttribute("data-note-signing", "");
      return;
    }
    var textarea = editorOf(event);
    if (textarea && textarea.hasAttribute("data-note-signing")) event.preventDefault();
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = signFormOf(event);
    if (!form) return;
    var xhr = event.detail.xhr;
    var editor = editorOfSignForm(form);
    if (!editor) return;
    if (xhr && xhr.status >= 200 && xhr.status < 300) {
      editor.readOnly = true;
    } else {
      editor.removeAttribute("data-note-signing");
    }
  });

  document.addEventListener("htmx:responseError", function (event) {
    failed(event, refusal(event.detail.xhr.status));
  });

  document.addEventListener("htmx:sendError", function (event) {
    failed(event, "the server could not be reached; it is tried again as you type.");
  });

  document.addEventListener("htmx:timeout", function (event) {
    failed(event, "the server did not answer in time; it is tried again as you type.");
  });

  // A save conflict: keep theirs, or put both texts in the editor to merge by hand.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-note-merge], [data-note-take-theirs]");
    if (!button) return;
    var merge = button.hasAttribute("data-note-merge");
    var id = button.getAttribute(merge ? "data-note-merge" : "data-note-take-theirs");
    var editor = document.getElementById("note-" + id + "-text");
    var theirs = document.getElementById("note-" + id + "-theirs");
    var mine = document.getElementById("note-" + id + "-mine");
    var version = document.getElementById("note-" + id + "-version");
    if (!editor || !theirs || !version) return;
    version.value = button.getAttribute("data-version");
    editor.value = merge
      ? theirs.value + "\n\n--- Your version, to merge by hand ---\n" + (mine ? mine.value : "")
      : theirs.value;
    var status = document.getElementById("note-" + id + "-status");
    if (status) {
      status.className = "note-status small mt-1";
      status.setAttribute("role", "status");
      status.textContent = merge
        ? "Both versions are in the editor: merge them; it is saved as you type."
        : "Their version is in the editor.";
    }
    editor.focus();
    if (merge) changed(editor);
  });
})();
