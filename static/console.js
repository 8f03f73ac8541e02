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
