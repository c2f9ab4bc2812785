// The playground: one prompt to the base and the fine-tuned model through the REST API, answers side by side.
// Asking only queues the prompt (202 and a URL); a worker generates, and the page polls that URL until the
// request has succeeded or failed. Recent prompts still queued or generating are followed the same way.
// Prompts and model output are untrusted text: they go in with textContent, never as HTML.
(function () {
  "use strict";

  const form = document.getElementById("playground-form");
  if (!form) return;
  const url = form.dataset.generateUrl;
  const token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const button = document.getElementById("ask");
  const status = document.getElementById("playground-status");
  const error = document.getElementById("playground-error");
  const answers = document.getElementById("answers");
  const base = document.getElementById("answer-base");
  const tuned = document.getElementById("answer-tuned");

  // Quick polls while a short answer may already be there, then one a second; after POLL_FOR_MS the page stops
  // asking (the server fails a request stuck generating; one still queued waits for a worker).
  const POLL_FIRST_MS = 500;
  const POLL_MAX_MS = 1000;
  const POLL_FOR_MS = 10 * 60 * 1000;
  const FINISHED = ["succeeded", "failed"];
  const LABELS = { queued: "Queued", running: "Generating", succeeded: "Answered", failed: "Failed" };
  const STATUS_TEXT = {
    queued: "Queued… waiting for a worker.",
    running: "Generating… the first prompt loads both models on a worker and takes longer.",
  };

  const sleep = (ms) => new Promise((resolve) => window.setTimeout(resolve, ms));

  async function body(response) {
    try {
      return await response.json();
    } catch (_) {
      return null;
    }
  }

  // DRF errors are {"detail": "..."} or {"field": ["...", ...]}.
  function describe(payload, response) {
    if (payload && typeof payload.detail === "string") return payload.detail;
    if (payload && typeof payload === "object") {
      return Object.entries(payload)
        .map(([field, messages]) => (field === "non_field_errors" ? "" : field.replace(/_/g, " ") + ": ") + [].concat(messages).join(" "))
        .join(" ");
    }
    return "The server answered " + response.status + ".";
  }

  class Refused extends Error {}

  // Poll a playground request until it finishes, calling onChange on each new status. Returns the finished
  // request, or null when it did not finish in time. A lost connection is retried; a refusal (4xx) throws.
  async function follow(pollUrl, onChange) {
    const deadline = performance.now() + POLL_FOR_MS;
    let wait = POLL_FIRST_MS;
    let last = null;
    while (performance.now() < deadline) {
      let response = null;
      try {
        response = await fetch(pollUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
      } catch (_) {
        response = null; // offline for a moment: ask again
      }
      if (response) {
        const request = await body(response);
        if (response.status >= 400 && response.status < 500) throw new Refused(describe(request, response));
        if (response.ok && request) {
          if (request.status !== last) {
            last = request.status;
            onChange(request);
          }
          if (FINISHED.includes(request.status)) return request;
        }
      }
      await sleep(wait);
      wait = Math.min(POLL_MAX_MS, wait * 1.25);
    }
    return null;
  }

  function report(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function fail(text) {
    error.textContent = text;
    error.hidden = false;
    report("failed", "");
  }

  function show(element, text) {
    element.textContent = text || "(no text generated)";
    element.classList.toggle("tr-muted", !text);
  }

  // Ctrl+Enter (Cmd+Enter) in the prompt asks, as in a chat box.
  form.elements.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !button.disabled) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const prompt = form.elements.prompt.value;
    if (!prompt.trim()) {
      fail("Type a prompt first.");
      return;
    }
    button.disabled = true;
    answers.hidden = true;
    form.setAttribute("aria-busy", "true");
    report("sending", "Sending…");
    const started = performance.now();
    try {
      const headers = { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": token };
      const payload = JSON.stringify({ prompt: prompt, max_new_tokens: Number(form.elements.max_new_tokens.value) });
      const response = await fetch(url, { method: "POST", credentials: "same-origin", headers: headers, body: payload });
      const queued = await body(response);
      if (response.status !== 202 || !queued || !queued.url) {
        fail(describe(queued, response));
        return;
      }
      report(queued.status, STATUS_TEXT[queued.status] || "");
      const request = await follow(queued.url, (update) => {
        if (!FINISHED.includes(update.status)) report(update.status, STATUS_TEXT[update.status] || "");
      });
      if (request === null) {
        fail("No worker has answered yet; the answer will show under Your recent prompts once it is ready.");
      } else if (request.status === "failed") {
        fail(request.error || "The models could not answer.");
      } else {
        show(base, request.base);
        show(tuned, request.fine_tuned);
        answers.hidden = false;
        report("succeeded", "Answered in " + ((performance.now() - started) / 1000).toFixed(1) + " s.");
      }
    } catch (problem) {
      fail(problem instanceof Refused ? problem.message : "The server could not be reached; try again.");
    } finally {
      button.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });

  // Recent prompts still queued or generating (asked before a reload, or in another tab) fill in when answered.
  function paint(item, request) {
    item.dataset.status = request.status;
    const chip = item.querySelector("[data-part=state]");
    chip.className = "tr-chip tr-chip-" + request.status;
    chip.textContent = LABELS[request.status] || request.status;
    chip.hidden = request.status === "succeeded";
    const problem = item.querySelector("[data-part=error]");
    problem.textContent = request.error || "";
    problem.hidden = request.status !== "failed";
    if (request.status === "succeeded") {
      show(item.querySelector("[data-part=base]"), request.base);
      show(item.querySelector("[data-part=fine-tuned]"), request.fine_tuned);
    }
    item.querySelector("[data-part=answers]").hidden = request.status !== "succeeded";
  }

  document.querySelectorAll(".tr-history-item[data-status=queued], .tr-history-item[data-status=running]").forEach((item) => {
    follow(item.dataset.url, (request) => paint(item, request)).catch(() => {});
  });
})();
