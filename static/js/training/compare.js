// The comparison page's chart: every run's loss curves on one chart, a colour per run (the same as its swatch in
// the runs table: tr-series-N in training.css). The points come from a JSON data block, never from inline script.
(function () {
  "use strict";

  const canvas = document.getElementById("compare-chart");
  const source = document.getElementById("compare-curves");
  if (!canvas || !source || !window.lossChart) return;
  const palette = ["#3b5bdb", "#e8590c", "#2b8a3e", "#ae3ec9", "#1098ad", "#f08c00", "#c2255c", "#5c940d", "#495057", "#7048e8"];
  const points = (pairs) => pairs.map((pair) => ({ x: pair[0], y: pair[1] }));
  const datasets = [];
  JSON.parse(source.textContent).forEach((run, index) => {
    const color = palette[index % palette.length];
    if (run.train.length) datasets.push(window.lossChart.series(run.label + " training", points(run.train), color, false));
    if (run.val.length) {
      const validation = window.lossChart.series(run.label + " validation", points(run.val), color, true);
      datasets.push(Object.assign(validation, { borderDash: [5, 4] }));
    }
  });
  canvas.dataset.series = String(datasets.length);
  if (!datasets.length) return;
  document.getElementById("compare-chart-empty").hidden = true;
  window.lossChart.make(canvas, datasets);
})();
