// The playground: one prompt to the base and the fine-tuned model through the REST API, answers side by side.
// Model output is untrusted text: it goes in with textContent, never as HTML.
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
  const WAIT_MS = 10 * 60 * 1000;

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

  function fail(text) {
    error.textContent = text;
    error.hidden = false;
    status.textContent = "";
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
    form.setAttribute("aria-busy", "true");
    status.textContent = "Generating… the first prompt loads both models on a worker and takes longer.";
    const started = performance.now();
    try {
      const headers = { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": token };
      const payload = JSON.stringify({ prompt: prompt, max_new_tokens: Number(form.elements.max_new_tokens.value) });
      let response = await fetch(url, { method: "POST", credentials: "same-origin", headers: headers, body: payload });
      let result = await body(response);
      if (response.status === 202 && result && result.url) {
        // Every worker was busy: the request stays queued and is answered later.
        const pollUrl = result.url;
        const deadline = performance.now() + WAIT_MS;
        while (response.status === 202 && performance.now() < deadline) {
          await sleep(1000);
          response = await fetch(pollUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
          result = await body(response);
        }
      }
      if (response.status === 202) {
        fail("No worker answered in time; try again later.");
      } else if (!response.ok) {
        fail(describe(result, response));
      } else {
        show(base, result.base);
        show(tuned, result.fine_tuned);
        answers.hidden = false;
        status.textContent = "Answered in " + ((performance.now() - started) / 1000).toFixed(1) + " s.";
      }
    } catch (_) {
      fail("The server could not be reached; try again.");
    } finally {
      button.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });
})();
