/* Instructory's only script: CSRF for htmx, keyboard shortcuts, the editor's counts and local drafts, bulk selection.
   Plain JavaScript, loaded from /static (the Content-Security-Policy forbids inline script). */
(function () {
  "use strict";

  var DRAFT_PREFIX = "instructory:draft:";
  var LEASE_RENEW_MS = 3 * 60 * 1000;

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  function csrfToken() {
    var meta = $('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function isTyping(target) {
    if (!target) { return false; }
    var tag = target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      var args = arguments;
      clearTimeout(timer);
      timer = setTimeout(function () { fn.apply(null, args); }, ms);
    };
  }

  function storage() {
    try { return window.localStorage; } catch (error) { return null; }
  }

  function draftKey(key) {
    return DRAFT_PREFIX + (document.body.dataset.user || "") + ":" + key;
  }

  function readDraft(key) {
    var store = storage();
    if (!store) { return null; }
    try { return JSON.parse(store.getItem(draftKey(key)) || "null"); } catch (error) { return null; }
  }

  function writeDraft(key, draft) {
    var store = storage();
    if (!store) { return; }
    try { store.setItem(draftKey(key), JSON.stringify(draft)); } catch (error) { /* full or disabled: nothing to do */ }
  }

  function removeDraft(key) {
    var store = storage();
    if (store) { store.removeItem(draftKey(key)); }
  }

  /* --- htmx: every request carries the CSRF token */
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRFToken"] = csrfToken();
  });

  /* --- a successful save redirects with ?saved=<id> (or new-<dataset>): its local draft is no longer needed */
  function clearSavedDraft() {
    var url = new URL(window.location.href);
    var saved = url.searchParams.get("saved");
    if (!saved) { return; }
    removeDraft(saved.indexOf("new-") === 0 ? "new:" + saved.slice(4) : "example:" + saved);
    url.searchParams.delete("saved");
    window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
  }

  /* --- the shortcuts overlay */
  function shortcutsDialog() { return $("#shortcuts"); }

  function toggleShortcuts() {
    var dialog = shortcutsDialog();
    if (!dialog) { return; }
    if (dialog.open) { dialog.close(); } else { dialog.showModal(); }
  }

  /* --- lists: J/K move, Enter/O open, X select, N/P pages, / search */
  var current = -1;

  function rows() { return $all("[data-list] [data-row]"); }

  function moveTo(index) {
    var all = rows();
    if (!all.length) { return; }
    current = Math.max(0, Math.min(all.length - 1, index));
    all.forEach(function (row, i) { row.classList.toggle("is-current", i === current); });
    all[current].scrollIntoView({ block: "nearest" });
    var link = $("[data-row-link]", all[current]);
    if (link) { link.focus({ preventScroll: true }); }
  }

  function listKeys(event) {
    var key = event.key;
    var all = rows();
    if (key === "/" && $("[data-search]")) {
      event.preventDefault();
      $("[data-search]").focus();
      return true;
    }
    if (!all.length) { return false; }
    if (key === "j") { moveTo(current + 1); return true; }
    if (key === "k") { moveTo(current < 0 ? 0 : current - 1); return true; }
    if ((key === "o" || key === "Enter") && current >= 0 && all[current]) {
      if (key === "Enter" && document.activeElement && document.activeElement.matches("[data-row-link]")) { return false; }
      window.location.href = all[current].dataset.href;
      return true;
    }
    if (key === "x" && current >= 0 && all[current]) {
      var box = $('input[type="checkbox"]', all[current]);
      if (box) { box.checked = !box.checked; box.dispatchEvent(new Event("change", { bubbles: true })); }
      return true;
    }
    if (key === "n" && $("[data-page-next]")) { $("[data-page-next]").click(); return true; }
    if (key === "p" && $("[data-page-prev]")) { $("[data-page-prev]").click(); return true; }
    return false;
  }

  /* --- the editor */
  function Editor(form) {
    this.form = form;
    this.key = form.dataset.draftKey;
    this.version = parseInt(form.dataset.version || "0", 10);
    this.submitting = false;
    this.lastActivity = Date.now();
    this.initial = JSON.stringify(this.values());
    this.dirty = form.hasAttribute("data-unsaved");
    this.saveDraftSoon = debounce(this.saveDraft.bind(this), 300);
    this.countTokensSoon = debounce(this.countTokens.bind(this), 600);
    this.bind();
    this.offerDraft();
    if (this.dirty) { this.saveDraft(); }
    this.showState();
    this.countChars();
    this.countTokens();
    this.keepLease();
  }

  Editor.prototype.field = function (name) { return this.form.elements.namedItem(name); };

  Editor.prototype.values = function () {
    var form = this.form;
    var get = function (name) {
      var element = form.elements.namedItem(name);
      return element && element.value !== undefined ? element.value : "";
    };
    return {
      system_prompt: get("system_prompt"),
      prompt: get("prompt"),
      response: get("response"),
      rejected: get("rejected"),
      tags: get("tags"),
      comment: get("comment"),
      turns: $all("[data-turn]", form).map(function (turn) {
        var train = $("[data-turn-train]", turn);
        return [$("select", turn).value, $("textarea", turn).value, train.checked, train.value];
      })
    };
  };

  Editor.prototype.apply = function (values) {
    var form = this.form;
    ["system_prompt", "prompt", "response", "rejected", "tags", "comment"].forEach(function (name) {
      var element = form.elements.namedItem(name);
      if (element && element.value !== undefined && values[name] !== undefined) { element.value = values[name]; }
    });
    var list = $("[data-turn-list]", form);
    if (list) {
      $all("[data-turn]", list).forEach(function (turn) { turn.remove(); });
      (values.turns || []).forEach(function (pair) {
        var turn = this.addTurn();
        $("select", turn).value = pair[0];
        $("textarea", turn).value = pair[1];
        if (pair.length > 2) {  // drafts saved before weights have none: the box stays checked
          $("[data-turn-train]", turn).checked = pair[2];
          $("[data-turn-train]", turn).value = pair[3] || "";
        }
      }, this);
    }
    if (values.comment) {
      var box = $("[data-reject-box]", form);
      if (box) { box.open = true; }
    }
    var response = this.field("response");
    if (response) { response.dispatchEvent(new Event("input", { bubbles: true })); }
  };

  Editor.prototype.addTurn = function () {
    var template = $("[data-turn-template]", this.form);
    var list = $("[data-turn-list]", this.form);
    var turn = template.content.firstElementChild.cloneNode(true);
    list.appendChild(turn);
    return turn;
  };

  Editor.prototype.changed = function () {
    var now = JSON.stringify(this.values());
    this.dirty = now !== this.initial || this.form.hasAttribute("data-unsaved");
    this.lastActivity = Date.now();
    if (this.dirty) { this.saveDraftSoon(); } else { removeDraft(this.key); }
    this.showState();
    this.countChars();
    this.countTokensSoon();
  };

  Editor.prototype.saveDraft = function () {
    if (!this.dirty || this.submitting) { return; }
    var base = parseInt((this.field("version") || {}).value || this.version, 10);
    writeDraft(this.key, { base: base, at: new Date().toISOString(), values: this.values() });
  };

  Editor.prototype.showState = function () {
    var state = $("[data-save-state]", this.form);
    if (state) { state.textContent = this.dirty ? "Unsaved changes (kept in this browser)" : ""; }
  };

  Editor.prototype.offerDraft = function () {
    var draft = readDraft(this.key);
    if (!draft || !draft.values) { return; }
    if (JSON.stringify(draft.values) === JSON.stringify(this.values())) { return; }
    var banner = $("[data-draft-banner]");
    if (!banner) { return; }
    var message = $("[data-draft-message]", banner);
    var when = new Date(draft.at);
    var text = "You have unsaved changes to this pair from " + when.toLocaleString() + ", kept in this browser.";
    if (this.version && draft.base && draft.base < this.version) {
      text += " The pair has been saved since (version " + draft.base + " → " + this.version + "); restoring and saving will show both versions to merge.";
    }
    message.textContent = text;
    banner.hidden = false;
    var self = this;
    $("[data-draft-restore]", banner).addEventListener("click", function () {
      self.apply(draft.values);
      var version = self.field("version");
      // The draft was written against draft.base: saving it must go through the stale-version check from there.
      if (version && draft.base) { version.value = String(Math.min(draft.base, parseInt(version.value, 10))); }
      self.form.setAttribute("data-unsaved", "");
      self.changed();
      banner.hidden = true;
    });
    $("[data-draft-discard]", banner).addEventListener("click", function () {
      removeDraft(self.key);
      banner.hidden = true;
    });
  };

  Editor.prototype.countChars = function () {
    var form = this.form;
    var totals = {};
    $all("[data-count]", form).forEach(function (element) {
      var name = element.dataset.count;
      totals[name] = (totals[name] || 0) + element.value.length;
    });
    this.chars = totals;
    this.render();
  };

  Editor.prototype.render = function () {
    var chars = this.chars || {};
    var tokens = this.tokens || null;
    var approx = tokens && !tokens.exact ? "≈" : "";
    $all("[data-counter-for]", this.form).forEach(function (counter) {
      var name = counter.dataset.counterFor;
      var text = (chars[name] || 0).toLocaleString() + " chars";
      if (tokens && tokens.counts[name] !== undefined) { text += " · " + approx + tokens.counts[name].toLocaleString() + " tokens"; }
      counter.textContent = text;
    });
    var totals = $("[data-totals]", this.form);
    if (totals && tokens) {
      var all = Object.keys(chars).reduce(function (sum, name) { return sum + chars[name]; }, 0);
      totals.textContent = "In all: " + all.toLocaleString() + " characters, " + approx + tokens.total.toLocaleString() +
        " tokens" + (tokens.exact ? " (the workspace's base model tokenizer)" : " (estimated as characters / 4 until the tokenizer is cached)");
    }
  };

  Editor.prototype.countTokens = function () {
    var url = this.form.dataset.tokensUrl;
    if (!url || !window.fetch) { return; }
    var values = this.values();
    var body = new FormData();
    body.append("system_prompt", values.system_prompt);
    body.append("history", values.turns.map(function (pair) { return pair[1]; }).join("\n"));
    body.append("prompt", values.prompt);
    body.append("response", values.response);
    if (this.field("rejected")) { body.append("rejected", values.rejected); }
    var self = this;
    fetch(url, { method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (tokens) { if (tokens) { self.tokens = tokens; self.render(); } })
      .catch(function () { /* counts are a convenience; the editor works without them */ });
  };

  Editor.prototype.keepLease = function () {
    var url = this.form.dataset.leaseUrl;
    if (!url || !window.fetch) { return; }
    var self = this;
    setInterval(function () {
      // Hold the pair only while someone is actually working on it.
      if (document.visibilityState !== "visible" || Date.now() - self.lastActivity > 10 * 60 * 1000) { return; }
      fetch(url, { method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() } }).catch(function () {});
    }, LEASE_RENEW_MS);
  };

  Editor.prototype.click = function (name) {
    var button = $('[data-shortcut="' + name + '"]', this.form) || $('[data-shortcut="' + name + '"]');
    if (button) { button.click(); return true; }
    return false;
  };

  Editor.prototype.openReject = function () {
    var box = $("[data-reject-box]", this.form);
    if (!box) { return false; }
    box.open = true;
    $("[data-reject-comment]", box).focus();
    return true;
  };

  Editor.prototype.bind = function () {
    var self = this;
    var form = this.form;
    form.addEventListener("input", function () { self.changed(); });
    form.addEventListener("change", function () { self.changed(); });
    form.addEventListener("click", function (event) {
      var target = event.target.closest("button");
      if (!target) { return; }
      if (target.hasAttribute("data-add-turn")) {
        $("textarea", self.addTurn()).focus();
        self.changed();
      } else if (target.hasAttribute("data-remove-turn")) {
        target.closest("[data-turn]").remove();
        self.changed();
      } else if (target.value === "reject") {
        var comment = $("[data-reject-comment]", form);
        if (comment && !comment.value.trim()) {
          event.preventDefault();
          self.openReject();
        }
      }
    });
    form.addEventListener("submit", function () {
      self.submitting = true;
      self.saveDraftNow();
    });
    window.addEventListener("beforeunload", function (event) {
      if (self.dirty && !self.submitting) {
        event.preventDefault();
        event.returnValue = "";
      }
    });
    window.addEventListener("pageshow", function () { self.submitting = false; });
  };

  Editor.prototype.saveDraftNow = function () {
    // Keep the text until the server confirms the save (the next page arrives with ?saved=...).
    if (!this.dirty) { return; }
    var base = parseInt((this.field("version") || {}).value || this.version, 10);
    writeDraft(this.key, { base: base, at: new Date().toISOString(), values: this.values() });
  };

  Editor.prototype.keys = function (event) {
    var ctrl = event.ctrlKey || event.metaKey;
    if (ctrl && !event.altKey && (event.key === "s" || event.key === "S")) {
      event.preventDefault();
      return this.click("save");
    }
    if (ctrl && event.key === "Enter") {
      event.preventDefault();
      if (document.activeElement && document.activeElement.matches("[data-reject-comment]")) { return this.click("reject"); }
      return this.click("save_next");
    }
    if (event.altKey && !ctrl) {
      var actions = { KeyS: "submit", KeyA: "approve", KeyJ: "next", KeyK: "previous", KeyH: "history", KeyW: "swap" };
      if (event.code === "KeyR") { event.preventDefault(); return this.openReject(); }
      if (actions[event.code]) { event.preventDefault(); return this.click(actions[event.code]); }
    }
    return false;
  };

  /* --- bulk selection on the dataset page */
  function initBulk(form) {
    function update() {
      var boxes = $all('input[name="selected"]', form);
      var chosen = boxes.filter(function (box) { return box.checked; });
      boxes.forEach(function (box) { box.closest("tr").classList.toggle("is-selected", box.checked); });
      var count = $("[data-selected-count]", form);
      if (count) { count.textContent = chosen.length ? chosen.length + " selected" : "No pairs selected"; }
      var apply = $("[data-bulk-apply]", form);
      if (apply) { apply.disabled = chosen.length === 0; }
      var all = $("[data-select-all]", form);
      if (all) { all.checked = boxes.length > 0 && chosen.length === boxes.length; }
    }
    function showFields() {
      var action = $("[data-bulk-action]", form).value;
      $("[data-bulk-field=tag]", form).hidden = action !== "add_tag" && action !== "remove_tag";
      $("[data-bulk-field=comment]", form).hidden = action !== "reject";
    }
    form.addEventListener("change", function (event) {
      if (event.target.matches("[data-select-all]")) {
        $all('input[name="selected"]', form).forEach(function (box) { box.checked = event.target.checked; });
      }
      if (event.target.matches("[data-bulk-action]")) { showFields(); }
      update();
    });
    document.addEventListener("htmx:afterSwap", function () { current = -1; update(); });
    showFields();
    update();
  }

  /* --- wiring */
  var editor = null;

  document.addEventListener("DOMContentLoaded", function () {
    clearSavedDraft();
    var form = $("[data-editor]");
    if (form) { editor = new Editor(form); }
    $all("[data-bulk]").forEach(initBulk);
    $all("[data-open-shortcuts]").forEach(function (button) { button.addEventListener("click", toggleShortcuts); });
    $all("[data-discard-draft]").forEach(function (link) {
      link.addEventListener("click", function () { removeDraft(link.dataset.discardDraft); });
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.isComposing) { return; }
    if (editor && editor.keys(event)) { return; }
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (isTyping(event.target)) {
      if (event.key === "Escape" && event.target.matches("[data-search]")) {
        // Leave the search box for J/K, keeping the search (a search input would clear itself on Escape).
        event.preventDefault();
        event.target.blur();
      }
      return;
    }
    if (event.key === "?") { event.preventDefault(); toggleShortcuts(); return; }
    var dialog = shortcutsDialog();
    if (dialog && dialog.open) { return; }
    if (listKeys(event)) { event.preventDefault(); }
  });
})();
