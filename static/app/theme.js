// Theme: the stored choice, else the system preference. Runs in <head> so the page never
// flashes the wrong theme.
(function () {
  "use strict";
  var KEY = "switchyard-theme";
  var root = document.documentElement;
  function stored() {
    try { return localStorage.getItem(KEY); } catch (e) { return null; }
  }
  function system() {
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  function apply(theme) {
    root.setAttribute("data-theme", theme);
    document.dispatchEvent(new CustomEvent("switchyard:theme", { detail: theme }));
  }
  apply(stored() || system());
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (button) {
      var label = function () {
        var next = root.getAttribute("data-theme") === "dark" ? "light" : "dark";
        button.textContent = next === "dark" ? "Dark theme" : "Light theme";
        button.setAttribute("aria-label", "Switch to the " + next + " theme");
      };
      label();
      button.addEventListener("click", function () {
        var next = root.getAttribute("data-theme") === "dark" ? "light" : "dark";
        try { localStorage.setItem(KEY, next); } catch (e) { /* private mode */ }
        apply(next);
        label();
      });
    }
    // The main links keep the page's time window (the page names it on its nav).
    var nav = document.querySelector("nav[data-window]"), kept = nav ? nav.getAttribute("data-window") : "";
    if (kept) {
      document.querySelectorAll("a[data-keeps-window]").forEach(function (a) {
        a.setAttribute("href", a.getAttribute("href").split("?")[0] + "?" + kept);
      });
    }
    // Window pickers: choosing a preset applies it at once; "custom" shows the range.
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () {
        var range = select.form.querySelector(".custom-range");
        if (select.value === "custom") {
          if (range) { range.hidden = false; }
          var since = select.form.querySelector("input[name=since]");
          if (since) { since.focus(); }
        } else {
          if (range) { range.querySelectorAll("input").forEach(function (i) { i.disabled = true; }); }
          select.form.submit();
        }
      });
    });
  });
})();
