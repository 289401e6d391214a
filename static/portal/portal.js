// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";
  // A prediction can take a moment the first time (the model is fetched): show it and block double posts.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var label = form.getAttribute("data-busy-label");
    var button = form.querySelector("button[type=submit]");
    if (!label || !button) return;
    if (!button.getAttribute("data-label")) button.setAttribute("data-label", button.textContent);
    window.setTimeout(function () {
      button.disabled = true;
      button.textContent = label;
    }, 0);
  });
  // Coming back through the history cache must not leave a button stuck on "Predicting…".
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-busy-label] button[type=submit][disabled]").forEach(function (b) {
      b.disabled = false;
      b.textContent = b.getAttribute("data-label") || b.textContent;
    });
  });
  // Bring the latest result into view after a post.
  document.addEventListener("DOMContentLoaded", function () {
    var target = document.querySelector("#csv-results, .form-errors, #unavailable");
    if (target && target.scrollIntoView) target.scrollIntoView({ block: "start" });
  });
})();
