// Small enhancements only; every page works without them.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  navigator.clipboard?.writeText(button.dataset.copy).then(() => {
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
});

// Deadline countdowns tick every second between polls.
function tick() {
  for (const el of document.querySelectorAll(".countdown[data-deadline]")) {
    const left = Math.max(0, Number(el.dataset.deadline) - Date.now()) / 1000;
    const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = Math.floor(left % 60);
    el.textContent = h ? `${h}h ${m}m ${s}s` : m ? `${m}m ${s}s` : `${s}s`;
  }
}
setInterval(tick, 1000);

// The Content-Security-Policy (console/headers.py) forbids style="" attributes, so the
// timeline's geometry comes as data-left / data-width (percent) and is applied here, on the
// page and on every fragment htmx swaps in.
function place(root) {
  const marked = root.matches?.("[data-left]") ? [root] : [];
  for (const el of [...marked, ...root.querySelectorAll("[data-left]")]) {
    el.style.left = `${el.dataset.left}%`;
    if (el.dataset.width !== undefined) el.style.width = `${el.dataset.width}%`;
  }
}
htmx.onLoad(place);

// Polls ("every Ns" triggers) skip while the tab is hidden. A trigger filter would need eval,
// which the policy forbids.
document.addEventListener("htmx:beforeRequest", (event) => {
  const trigger = event.detail.elt.getAttribute("hx-trigger") || "";
  if (document.visibilityState !== "visible" && trigger.trim().startsWith("every ")) {
    event.preventDefault();
  }
});
