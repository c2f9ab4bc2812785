// The run page's live parts (status, progress, log tail, loss chart), refreshed from one JSON poll.
// Text from the server goes in with textContent only: log lines come from the worker and the dataset.
(function () {
  "use strict";

  const root = document.getElementById("run");
  if (!root) return;
  const liveUrl = root.dataset.liveUrl;
  const pollMs = Number(root.dataset.pollMs) || 2000;
  const renderedFinished = root.dataset.finished === "true";
  const progress = document.getElementById("run-progress");
  const chip = document.getElementById("run-status");
  const log = document.getElementById("run-log");
  const logLimit = Number(log.dataset.limit) || 50;
  const canvas = document.getElementById("loss-chart");
  const chartEmpty = document.getElementById("chart-empty");
  const train = [];
  const validation = [];
  let chart = null;
  let metricsAfter = 0;
  let logsAfter = Number(log.dataset.after) || 0;
  let failures = 0;

  function makeChart() {
    if (!window.lossChart) return null;
    return window.lossChart.make(canvas, [
      window.lossChart.series("Training loss", train, "#3b5bdb", false),
      window.lossChart.series("Validation loss", validation, "#e8590c", true),
    ]);
  }

  function addMetrics(metrics) {
    for (const m of metrics) {
      metricsAfter = Math.max(metricsAfter, m.id);
      if (m.loss !== null) train.push({ x: m.step, y: m.loss });
      if (m.val_loss !== null) validation.push({ x: m.step, y: m.val_loss });
    }
    canvas.dataset.trainPoints = String(train.length);
    canvas.dataset.valPoints = String(validation.length);
    if (!train.length && !validation.length) return;
    chartEmpty.hidden = true;
    if (!chart) chart = makeChart();
    if (chart && metrics.length) chart.update("none");
  }

  function addLogs(lines) {
    if (!lines.length) return;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
    for (const entry of lines) {
      const item = document.createElement("li");
      const time = document.createElement("time");
      time.textContent = entry.time;
      const text = document.createElement("span");
      text.textContent = entry.line;
      item.append(time, " ", text);
      log.append(item);
      logsAfter = Math.max(logsAfter, entry.id);
    }
    while (log.children.length > logLimit) log.firstElementChild.remove();
    const empty = document.getElementById("log-empty");
    if (empty) empty.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function apply(state) {
    for (const element of root.querySelectorAll("[data-field]")) {
      const value = state[element.dataset.field];
      if (value !== undefined && value !== null) element.textContent = String(value);
    }
    chip.className = "tr-chip tr-chip-" + state.status;
    chip.dataset.status = state.status;
    progress.value = state.progress;
    progress.dataset.step = String(state.step);
    addMetrics(state.metrics);
    addLogs(state.logs);
  }

  function schedule(delay) {
    window.setTimeout(poll, document.hidden ? Math.max(delay, 10000) : delay);
  }

  async function poll() {
    let state;
    try {
      const query = "?metrics_after=" + metricsAfter + "&logs_after=" + logsAfter;
      const response = await fetch(liveUrl + query, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      state = await response.json();
    } catch (error) {
      failures += 1;  // a restart or a network blip: back off, keep trying
      schedule(Math.min(pollMs * 2 ** failures, 30000));
      return;
    }
    failures = 0;
    apply(state);
    if (!state.finished) {
      schedule(pollMs);
    } else if (!renderedFinished) {
      // The evaluation, summary and artifact link are rendered by the server: show them.
      window.location.reload();
    }
  }

  log.scrollTop = log.scrollHeight;
  poll();
})();
