// The lab order's catalog search by keyboard: ArrowDown from the search box to the first
// test found, ArrowDown / ArrowUp through the results (back to the box from the first), Enter
// adds the focused test. Tab works too; this only saves key presses.
(function () {
  "use strict";

  function choices() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-test-choice]"));
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    var target = event.target;
    var list = choices();
    if (!list.length) return;
    if (target.id === "test_query" && event.key === "ArrowDown") {
      event.preventDefault();
      list[0].focus();
      return;
    }
    var index = list.indexOf(target);
    if (index < 0) return;
    event.preventDefault();
    if (event.key === "ArrowDown" && index < list.length - 1) list[index + 1].focus();
    if (event.key === "ArrowUp") {
      if (index === 0) document.getElementById("test_query").focus();
      else list[index - 1].focus();
    }
  });
})();
