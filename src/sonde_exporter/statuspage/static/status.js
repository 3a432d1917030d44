// Filters /status as you type or tick a state; without this file the same form filters on the
// server (it is a plain GET form), so the page works without JavaScript.
"use strict";
(function () {
  const form = document.querySelector("form.filters");
  if (!form) return;
  const box = form.querySelector("input[name=q]");
  const shown = document.getElementById("shown");
  const none = document.querySelector(".js-empty");
  function apply() {
    const text = box.value.trim().toLowerCase();
    const states = Array.from(form.querySelectorAll("input[name=state]:checked"), (c) => c.value);
    let count = 0;
    const seen = new Set();
    for (const group of document.querySelectorAll("section.group")) {
      let visible = 0;
      for (const item of group.querySelectorAll("li.monitor")) {
        const match = (states.length === 0 || states.includes(item.dataset.state)) &&
          item.dataset.search.includes(text);
        item.hidden = !match;
        if (match) {
          visible += 1;
          seen.add(item.querySelector("a.name").getAttribute("href"));
        }
      }
      group.hidden = visible === 0;
      const counter = group.querySelector("h2 .count");
      if (counter) counter.textContent = String(visible);
    }
    count = seen.size;
    if (shown) shown.textContent = String(count);
    if (none) none.hidden = count !== 0;
    const query = new URLSearchParams();
    if (box.value.trim()) query.set("q", box.value.trim());
    for (const state of states) query.append("state", state);
    const search = query.toString();
    history.replaceState(null, "", search ? "?" + search : location.pathname);
  }
  box.addEventListener("input", apply);
  for (const check of form.querySelectorAll("input[name=state]")) {
    check.addEventListener("change", apply);
  }
})();
