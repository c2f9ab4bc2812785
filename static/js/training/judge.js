// Blind judging: keys for the verdict buttons (1, 2, T, B) and the rewrite box (E), Ctrl+Enter to send a text.
// The pair itself comes from the server (htmx swaps #judge-pair); this script only presses its buttons, so a key
// does exactly what a click would. Keys do nothing while typing in a box (Esc leaves the box).
(function () {
  "use strict";

  const CHOICES = { 1: "a", 2: "b", t: "tie", b: "both_bad" };

  function typing(target) {
    if (!target) return false;
    const tag = target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
  }

  function voteButton(choice) {
    return document.querySelector('#vote-form button[name=choice][value="' + choice + '"]:not([data-judge-save])');
  }

  function openRewrite() {
    const box = document.getElementById("rewrite-box");
    if (!box) return false;
    box.hidden = false;
    box.querySelector("[data-judge-rewrite-text]").focus();
    return true;
  }

  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-judge-rewrite]")) openRewrite();
  });

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing) return;
    const target = event.target;
    if (typing(target)) {
      const send = event.key === "Enter" && (event.ctrlKey || event.metaKey);
      const rewriting = target.hasAttribute("data-judge-rewrite-text");
      if (send && rewriting) {
        event.preventDefault();
        document.querySelector("[data-judge-save]").click();
      } else if (send && target.id === "ask-prompt") {
        event.preventDefault();
        target.form.requestSubmit();
      } else if (event.key === "Escape" && (rewriting || target.id === "ask-prompt")) {
        target.blur();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.toLowerCase();
    if (key === "e") {
      if (openRewrite()) event.preventDefault(); // the E must not land in the box it opens
      return;
    }
    const button = CHOICES[key] ? voteButton(CHOICES[key]) : null;
    if (button) {
      event.preventDefault();
      button.click();
    }
  });

  // A prompt sent is cleared from its box, and the box left, so the keys judge its pair once it is answered; a
  // refused one stays to be fixed.
  document.body.addEventListener("htmx:afterRequest", (event) => {
    const form = event.detail.elt;
    if (form && form.id === "ask-form" && event.detail.successful && !document.querySelector("[data-judge-problem]")) {
      form.reset();
      if (form.contains(document.activeElement)) document.activeElement.blur();
    }
  });
})();
