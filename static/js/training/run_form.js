// The new-run form: choosing an objective puts in its default settings (epochs, learning rate, ...), except where
// the person already typed their own value.
(function () {
  "use strict";
  const select = document.querySelector("select[name=objective]");
  if (!select || !select.dataset.defaults) return;
  const defaults = JSON.parse(select.dataset.defaults);
  let previous = select.value;
  select.addEventListener("change", function () {
    const before = defaults[previous] || {};
    const after = defaults[select.value] || {};
    Object.keys(after).forEach(function (name) {
      const input = select.form.querySelector("[name=" + name + "]");
      if (!input || typeof after[name] === "object") return;
      if (input.value === "" || Number(input.value) === Number(before[name])) input.value = after[name];
    });
    previous = select.value;
  });
})();
