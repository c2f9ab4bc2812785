// The loss chart of the run page and the comparison page (Chart.js, vendored): loss by step, a solid line for
// training loss and points for validation loss. window.lossChart.make returns null when Chart.js did not load.
(function () {
  "use strict";

  function series(label, data, color, validation) {
    const line = { label: label, data: data, borderColor: color, backgroundColor: color, borderWidth: 2 };
    if (validation) return Object.assign(line, { pointRadius: 4, tension: 0 });
    return Object.assign(line, { pointRadius: 0, pointHitRadius: 6, cubicInterpolationMode: "monotone" });
  }

  // yTitle: the y axis' name ("loss" when left out); y2Title: a second axis on the right, for series with yAxisID "y2"
  function make(canvas, datasets, yTitle, y2Title) {
    if (!window.Chart) return null;
    return new window.Chart(canvas, {
      type: "line",
      data: { datasets: datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        parsing: false,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        scales: {
          x: { type: "linear", min: 0, title: { display: true, text: "step" }, ticks: { precision: 0 } },
          y: { title: { display: true, text: yTitle || "loss" } },
          ...(y2Title
            ? { y2: { position: "right", min: 0, max: 1, grid: { drawOnChartArea: false }, title: { display: true, text: y2Title } } }
            : {}),
        },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      },
    });
  }

  window.lossChart = { make: make, series: series };
})();
