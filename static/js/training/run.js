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
  // preference runs (dpo, orpo): reward margin and accuracy, chosen and rejected log-probabilities, per step
  const rewardCanvas = document.getElementById("reward-chart");
  const logpCanvas = document.getElementById("logp-chart");
  const margin = [];
  const accuracy = [];
  const chosen = [];
  const rejected = [];
  let rewardChart = null;
  let logpChart = null;
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

  function addPreference(metrics) {
    if (!rewardCanvas || !window.lossChart) return;
    for (const m of metrics) {
      if (m.reward_margin != null) margin.push({ x: m.step, y: m.reward_margin });
      if (m.reward_accuracy != null) accuracy.push({ x: m.step, y: m.reward_accuracy });
      if (m.logp_chosen != null) chosen.push({ x: m.step, y: m.logp_chosen });
      if (m.logp_rejected != null) rejected.push({ x: m.step, y: m.logp_rejected });
    }
    rewardCanvas.dataset.points = String(margin.length);
    logpCanvas.dataset.points = String(chosen.length);
    if (!margin.length && !chosen.length) return;
    if (!rewardChart) {
      const accuracySeries = window.lossChart.series("Reward accuracy", accuracy, "#2b8a3e", false);
      accuracySeries.yAxisID = "y2";
      rewardChart = window.lossChart.make(
        rewardCanvas,
        [window.lossChart.series("Reward margin", margin, "#7048e8", false), accuracySeries],
        "reward margin",
        "reward accuracy",
      );
      logpChart = window.lossChart.make(
        logpCanvas,
        [
          window.lossChart.series("Chosen log-prob", chosen, "#2b8a3e", false),
          window.lossChart.series("Rejected log-prob", rejected, "#c92a2a", false),
        ],
        "log-probability",
      );
    }
    if (rewardChart && metrics.length) rewardChart.update("none");
    if (logpChart && metrics.length) logpChart.update("none");
  }

  function addMetrics(metrics) {
    for (const m of metrics) {
      metricsAfter = Math.max(metricsAfter, m.id);
      if (m.loss !== null) train.push({ x: m.step, y: m.loss });
      if (m.val_loss !== null) validation.push({ x: m.step, y: m.val_loss });
    }
    addPreference(metrics);
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
