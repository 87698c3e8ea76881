// The checkout return page asks the server every few seconds whether the
// payment has been confirmed (the webhook may land after the buyer does),
// swapping in the new status until it is no longer pending.
(function () {
  const box = document.getElementById("checkout-status");
  if (!box) return;
  let delay = 1500;
  async function poll() {
    if (box.querySelector("[data-state]").dataset.state !== "pending") return;
    try {
      const response = await fetch(box.dataset.poll, {headers: {"Accept": "text/html"}, credentials: "same-origin"});
      if (response.ok) {
        const html = await response.text();
        const next = new DOMParser().parseFromString(html, "text/html").querySelector("[data-state]");
        if (next && next.dataset.state !== "pending") {
          box.innerHTML = html;
          box.querySelector("h1")?.focus?.();
          return;
        }
        if (next && next.innerHTML !== box.querySelector("[data-state]").innerHTML) box.innerHTML = html;
      }
    } catch (error) { /* offline for a moment: try again */ }
    delay = Math.min(delay * 1.5, 10000);
    setTimeout(poll, delay);
  }
  setTimeout(poll, delay);
})();
