// The custom top-up form: show the price as people type. The server prices
// and checks the amount again; this is only a preview.
(function () {
  const form = document.querySelector("[data-testid=custom-form]");
  if (!form) return;
  const input = form.querySelector("input[name=credits]");
  const out = form.querySelector("[data-testid=custom-price]");
  const centsPerCredit = Number(form.dataset.centsPerCredit);
  const money = new Intl.NumberFormat("en-US", {style: "currency", currency: form.dataset.currency || "USD"});
  function update() {
    const text = input.value.replace(/[,_\s]/g, "");
    const credits = Number(text);
    if (!/^\d+$/.test(text) || credits < Number(form.dataset.min) || credits > Number(form.dataset.max)) {
      out.textContent = "—";
      return;
    }
    // Whole cents, half up, like the server (at most 100,000 credits: exact in a double).
    out.textContent = money.format(Math.round(credits * centsPerCredit) / 100);
  }
  input.addEventListener("input", update);
  update();
})();
