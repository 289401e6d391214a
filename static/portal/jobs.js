// Live progress on a job page: polls GET /api/jobs/<id> (session auth) until the job succeeds or fails.
(function () {
  "use strict";
  var POLL_MS = 1000;

  function show(el, visible) {
    if (el) el.hidden = !visible;
  }

  function render(root, job) {
    var status = document.getElementById("job-status");
    status.textContent = job.status;
    status.className = "status status-" + job.status;
    document.getElementById("job-progress").value = job.progress;
    document.getElementById("job-rows").textContent = job.rows_done + " / " + job.rows_total + " rows";
    root.setAttribute("data-status", job.status);
    show(document.getElementById("job-download"), job.status === "succeeded");
    if (job.error) {
      document.getElementById("job-error-message").textContent = job.error.message;
      var list = document.getElementById("job-error-list");
      list.textContent = "";
      Object.keys(job.error.errors || {}).forEach(function (key) {
        var item = document.createElement("li");
        item.textContent = key + ": " + job.error.errors[key];
        list.appendChild(item);
      });
      show(document.getElementById("job-error"), true);
    }
  }

  function poll(root) {
    var status = root.getAttribute("data-status");
    if (status === "succeeded" || status === "failed") return;
    fetch(root.getAttribute("data-api-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (job) {
        render(root, job);
        window.setTimeout(function () { poll(root); }, POLL_MS);
      })
      .catch(function () {
        window.setTimeout(function () { poll(root); }, POLL_MS * 3); // a restarting node: keep trying, slower
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("job");
    if (root) poll(root);
  });
})();
