// The calendar's keyboard: p / n / t move between days (or weeks), arrow keys move between
// the grid's cells (one tab stop: roving tabindex), Enter opens a slot or a visit. Choosing a
// type fills in its usual length. Loaded with a CSP nonce; no inline handlers.
(function () {
  "use strict";

  function typing(target) {
    return target.closest("input, textarea, select, [contenteditable]");
  }

  function cells() {
    return Array.prototype.slice.call(
      document.querySelectorAll(".calendar-grid [data-row][data-col]")
    );
  }

  // Exactly one cell of the grid is in the tab order: the last focused, else the first.
  function initRoving() {
    var all = cells();
    if (!all.length) return;
    var current = all.find(function (cell) { return cell.getAttribute("tabindex") === "0"; });
    if (!current) {
      var nowLine = document.getElementById("now-line");
      current = all[0];
      if (nowLine) {
        var row = nowLine.closest("tr");
        var inRow = row && row.querySelector("[data-row]");
        if (inRow) current = inRow;
      }
      current.setAttribute("tabindex", "0");
    }
  }

  function focusCell(cell) {
    cells().forEach(function (other) { other.setAttribute("tabindex", "-1"); });
    cell.setAttribute("tabindex", "0");
    cell.focus();
  }

  function position(cell) {
    return {
      row: parseInt(cell.dataset.row, 10),
      col: parseInt(cell.dataset.col, 10),
      span: parseInt(cell.dataset.span || "1", 10),
    };
  }

  // The cell of column ``col`` that covers ``row`` (a visit spans several rows).
  function cellAt(row, col) {
    return cells().find(function (cell) {
      var p = position(cell);
      return p.col === col && p.row <= row && row < p.row + p.span;
    });
  }

  // Visits that overlap share one table cell: up and down step through them first.
  function besideInCell(cell, step) {
    var next = step > 0 ? cell.nextElementSibling : cell.previousElementSibling;
    return next && next.matches("[data-row][data-col]") ? next : null;
  }

  function lastInCell(cell) {
    var next = besideInCell(cell, 1);
    while (next) {
      cell = next;
      next = besideInCell(cell, 1);
    }
    return cell;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    var inGrid = target.closest && target.closest(".calendar-grid [data-row]");
    if (inGrid && /^Arrow/.test(event.key)) {
      var p = position(inGrid);
      var next = null;
      if (event.key === "ArrowDown") next = besideInCell(inGrid, 1) || cellAt(p.row + p.span, p.col);
      if (event.key === "ArrowUp") {
        next = besideInCell(inGrid, -1);
        if (!next) {
          var above = cellAt(p.row - 1, p.col);
          next = above && lastInCell(above);
        }
      }
      if (event.key === "ArrowRight") next = cellAt(p.row, p.col + 1);
      if (event.key === "ArrowLeft") next = cellAt(p.row, p.col - 1);
      event.preventDefault();
      if (next) focusCell(next);
      return;
    }
    if (typing(target)) {
      if (target.id === "patient-query") pickerKey(event, target);
      return;
    }
    var link = document.querySelector('[data-calendar-key="' + event.key + '"]');
    if (link) {
      event.preventDefault();
      link.click();
    }
  });

  // The booking panel's patient picker: the arrow keys highlight a match, Enter takes the
  // highlighted one (else runs the search: it never submits the booking). A lone match is
  // highlighted for Enter but never chosen by itself: booking the wrong patient because
  // they happened to be the only one listed is the mistake to prevent.
  function pickerOptions() {
    return Array.prototype.slice.call(
      document.querySelectorAll("#patient-options input[type=radio]")
    );
  }

  function highlightOption(query, index) {
    var options = pickerOptions();
    options.forEach(function (option, i) {
      option.closest(".form-check").classList.toggle("is-highlighted", i === index);
    });
    if (options[index]) {
      query.setAttribute("aria-activedescendant", options[index].id);
      options[index].closest(".form-check").scrollIntoView({ block: "nearest" });
    } else {
      query.removeAttribute("aria-activedescendant");
    }
  }

  function highlighted(options) {
    return options.findIndex(function (option) {
      return option.closest(".form-check").classList.contains("is-highlighted");
    });
  }

  function pickerKey(event, query) {
    var options = pickerOptions();
    var index = highlighted(options);
    if ((event.key === "ArrowDown" || event.key === "ArrowUp") && options.length) {
      event.preventDefault();
      if (event.key === "ArrowDown") index = index < 0 ? 0 : Math.min(index + 1, options.length - 1);
      else index = index < 0 ? options.length - 1 : Math.max(index - 1, 0);
      highlightOption(query, index);
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (index >= 0) {
        options[index].checked = true;
        options[index].dispatchEvent(new Event("change", { bubbles: true }));
      } else if (window.htmx) {
        window.htmx.trigger(query, "search");
      }
    }
  }

  // "Book (or Move) at <the next free time> instead", after a time was just taken: that
  // time goes in the form, which is sent as it is otherwise.
  document.addEventListener("click", function (event) {
    var use = event.target.closest && event.target.closest("[data-use-day]");
    if (!use) return;
    var form = use.closest("form");
    form.querySelector("#day").value = use.dataset.useDay;
    form.querySelector("#start_time").value = use.dataset.useTime;
    form.requestSubmit(form.querySelector("[type=submit]"));
  });

  // What is typed after the list came makes it stale: nothing stays highlighted for Enter.
  document.addEventListener("input", function (event) {
    if (event.target.id === "patient-query") highlightOption(event.target, -1);
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (!event.detail.target || event.detail.target.id !== "patient-options") return;
    var query = document.getElementById("patient-query");
    var options = pickerOptions();
    var chosen = options.some(function (option) { return option.checked; });
    highlightOption(query, options.length === 1 && !chosen ? 0 : -1);
  });

  // A visit opens its panel: one listener for the grid's thousands of visits instead of
  // htmx wiring up each one on every refresh of the grid.
  document.addEventListener("click", function (event) {
    var visit = event.target.closest && event.target.closest(".calendar-grid button.appt");
    if (!visit || !window.htmx) return;
    var url = visit.closest(".calendar-grid").dataset.visitUrl + visit.id.replace("appt-", "");
    window.htmx.ajax("GET", url, { target: "#side-panel", swap: "innerHTML" });
  });

  document.addEventListener("focusin", function (event) {
    var cell = event.target.closest && event.target.closest(".calendar-grid [data-row]");
    if (cell && cell.getAttribute("tabindex") !== "0") {
      cells().forEach(function (other) { other.setAttribute("tabindex", "-1"); });
      cell.setAttribute("tabindex", "0");
    }
  });

  // Choosing a type fills in its usual length.
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (!select.dataset || !select.dataset.minutesTarget) return;
    var option = select.options[select.selectedIndex];
    var minutes = document.getElementById(select.dataset.minutesTarget);
    if (option && minutes && option.dataset.minutes) minutes.value = option.dataset.minutes;
  });

  // A new panel takes the focus (its autofocus field, else its heading), so keyboard users
  // land where the answer is; Escape in the panel goes back to the grid cell they left.
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (!target || target.id !== "side-panel") return;
    if (target.contains(document.activeElement)) return;
    var field = target.querySelector("[autofocus]");
    var heading = target.querySelector("h2");
    if (field) field.focus();
    else if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
  });

  // "Find next available": the answer to a Book button (booked, or why not) takes the
  // focus, so it is read and seen where it appears, not below the list of slots.
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (!target || target.id !== "find-booking-result") return;
    var heading = target.querySelector("h2, [role=alert]");
    if (!heading) return;
    if (!heading.hasAttribute("tabindex")) heading.setAttribute("tabindex", "-1");
    heading.focus();
    target.scrollIntoView({ block: "nearest" });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var panel = document.getElementById("side-panel");
    if (!panel || !panel.contains(event.target)) return;
    var cell = document.querySelector('.calendar-grid [tabindex="0"]');
    if (cell) {
      event.preventDefault();
      cell.focus();
    }
  });

  // Today's grid opens at the current time, not at the start of the day: the visits that
  // matter now are in view (the "now" row about a third of the way down). Only when the
  // page loads, so a refresh of the grid never moves what someone scrolled to.
  function scrollToNow() {
    var nowLine = document.getElementById("now-line");
    var scroller = nowLine && nowLine.closest(".calendar-scroll");
    if (!scroller) return;
    var row = nowLine.closest("tr");
    var offset = row.getBoundingClientRect().top - scroller.getBoundingClientRect().top;
    scroller.scrollTop += offset - scroller.clientHeight / 3;
  }

  document.addEventListener("DOMContentLoaded", initRoving);
  document.addEventListener("DOMContentLoaded", scrollToNow);
  document.addEventListener("htmx:afterSettle", function (event) {
    initRoving();
    // A day change keeps the keyboard in the grid: focus the cell that had it.
    if (event.detail.target && event.detail.target.id === "calendar" && document.activeElement === document.body) {
      var first = document.querySelector('.calendar-grid [tabindex="0"]');
      if (first) first.focus();
    }
  });
})();
