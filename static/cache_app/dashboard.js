// Draws the cache dashboard's charts from the JSON the view embeds (id "cache-dashboard-data").
// Chart.js is served from static/vendor: no CDN, so the dashboard works on a closed network.
(function () {
  "use strict";
  var TIER_COLOURS = { memory: "#2e7d32", disk: "#1565c0", shared: "#ef6c00", origin: "#8e24aa" };

  function draw() {
    var source = document.getElementById("cache-dashboard-data");
    if (!source || typeof Chart === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    var hitCanvas = document.getElementById("hit-rate-chart");
    if (hitCanvas) {
      new Chart(hitCanvas, {
        type: "line",
        data: {
          labels: data.hit_rate.labels,
          datasets: data.hit_rate.datasets.map(function (d) {
            return {
              label: d.tier, data: d.points, spanGaps: true, tension: 0.2,
              pointRadius: data.hit_rate.labels.length > 60 ? 1 : 5, borderWidth: 2,
              borderColor: TIER_COLOURS[d.tier], backgroundColor: TIER_COLOURS[d.tier]
            };
          })
        },
        options: {
          animation: false, responsive: true, maintainAspectRatio: false,
          scales: { y: { min: 0, max: 100, title: { display: true, text: "hit rate %" } } },
          plugins: { tooltip: { callbacks: { label: function (c) { return c.dataset.label + ": " + c.formattedValue + " %"; } } } }
        }
      });
    }
    var diskCanvas = document.getElementById("disk-chart");
    if (diskCanvas) {
      new Chart(diskCanvas, {
        type: "bar",
        data: {
          labels: data.disk.labels,
          datasets: [
            { label: "used MB", data: data.disk.used_mb, backgroundColor: "#1565c0" },
            { label: "free under the limit MB", data: data.disk.free_mb, backgroundColor: "#cfd8dc" }
          ]
        },
        options: {
          indexAxis: "y", animation: false, responsive: true, maintainAspectRatio: false,
          scales: { x: { stacked: true, min: 0, max: data.disk.limit_mb, title: { display: true, text: "MB" } },
                    y: { stacked: true } }
        }
      });
    }
    document.body.setAttribute("data-charts-ready", "true");
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
}());
