/* The overview's charts (Chart.js, vendored). Data comes from the page (#timeline-data); when live.js
 * re-reads that region after a conflict or lock event, the charts are updated in place. The table under
 * the charts carries the same numbers for screen readers and for pages without JavaScript. */
(function () {
  "use strict";
  if (typeof window.Chart === "undefined") return;

  var charts = {};

  function readData() {
    var node = document.getElementById("timeline-data");
    if (!node) return null;
    try {
      return JSON.parse(node.textContent);
    } catch (error) {
      return null;
    }
  }

  function options(stacked) {
    return {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "bottom", labels: { color: "#1b1f24" } } },
      scales: {
        x: { stacked: stacked, ticks: { color: "#4f5966", maxRotation: 0, autoSkip: true, maxTicksLimit: 12 }, grid: { display: false } },
        y: { stacked: stacked, beginAtZero: true, ticks: { color: "#4f5966", precision: 0 }, grid: { color: "#e5e9ef" } },
      },
    };
  }

  function datasets(data) {
    return {
      conflicts: [{ label: "refused stale writes", data: data.conflicts, backgroundColor: "#a11a1a" }],
      locks: [
        { label: "waits", data: data.lock_waits, backgroundColor: "#0b4f8a" },
        { label: "waits timed out", data: data.lock_timeouts, backgroundColor: "#b45f06" },
        { label: "leases expired", data: data.lock_expired, backgroundColor: "#6b3fa0" },
        { label: "wait alerts", data: data.lock_alerts, backgroundColor: "#1b1f24" },
      ],
    };
  }

  function draw() {
    var data = readData();
    if (!data) return;
    var sets = datasets(data);
    [["conflicts", "chart-conflicts", false], ["locks", "chart-locks", true]].forEach(function (spec) {
      var name = spec[0];
      var canvas = document.getElementById(spec[1]);
      if (!canvas) return;
      var chart = charts[name];
      if (chart) {
        chart.data.labels = data.labels;
        chart.data.datasets.forEach(function (dataset, index) {
          dataset.data = sets[name][index].data;
        });
        chart.update("none");
      } else {
        charts[name] = new window.Chart(canvas, {
          type: "bar",
          data: { labels: data.labels, datasets: sets[name] },
          options: options(spec[2]),
        });
      }
    });
  }

  document.addEventListener("hub:refreshed", function (event) {
    if (event.detail && event.detail.id === "overview-charts") draw();
  });
  draw();
})();
