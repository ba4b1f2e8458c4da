// The keyboard of a list of suggestions found as one types (the drug search of a
// prescription, the test search of a lab order): one helper for every such list.
//
// Markup: the search box names its results' container, data-suggestions="<container id>";
// each suggestion in it is a focusable control (a button of its own form) marked
// data-suggestion. Keys: ArrowDown from the box to the first suggestion; ArrowDown / ArrowUp
// through them (ArrowUp from the first goes back to the box); Enter is the focused button's
// own (it picks); Escape closes the list and gives the box back the focus. Tab works too:
// this only saves key presses. Loaded with a CSP nonce; no inline handlers. Safe to load twice.
(function () {
  "use strict";
  if (window.portalListboxLoaded) return;
  window.portalListboxLoaded = true;

  function suggestionsIn(container) {
    return Array.prototype.slice.call(container.querySelectorAll("[data-suggestion]"));
  }

  // The search box and the results' container of the element that has the key.
  function listOf(target) {
    if (!target || !target.getAttribute) return null;
    var name = target.getAttribute("data-suggestions");
    if (name) {
      var results = document.getElementById(name);
      return results ? { box: target, container: results } : null;
    }
    if (!target.hasAttribute("data-suggestion")) return null;
    var boxes = document.querySelectorAll("[data-suggestions]");
    for (var i = 0; i < boxes.length; i++) {
      var container = document.getElementById(boxes[i].getAttribute("data-suggestions"));
      if (container && container.contains(target)) return { box: boxes[i], container: container };
    }
    return null;
  }

  function close(list) {
    list.container.innerHTML = "";
    list.box.focus();
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp" && event.key !== "Escape") return;
    var target = event.target;
    var list = listOf(target);
    if (!list) return;
    var choices = suggestionsIn(list.container);
    var index = choices.indexOf(target); // -1: the key is in the search box
    if (!choices.length || (index < 0 && event.key === "ArrowUp")) return;
    event.preventDefault();
    if (event.key === "Escape") {
      close(list);
      return;
    }
    if (event.key === "ArrowDown") {
      if (index < choices.length - 1) choices[index + 1].focus();
    } else if (index === 0) {
      list.box.focus();
    } else {
      choices[index - 1].focus();
    }
  });
})();
