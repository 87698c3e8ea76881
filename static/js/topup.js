// The custom top-up form: show the price as people type. The server prices
// and checks the amount again; this is only a preview, but it must match the
// server to the cent, so it never uses floating point: the price of a credit
// in cents comes as an exact decimal string ("0.35") and the sum is done in
// BigInt, rounded half up once, as billing.money.credits_price_cents does.
(function () {
  const form = document.querySelector("[data-testid=custom-form]");
  if (!form) return;
  const input = form.querySelector("input[name=credits]");
  const out = form.querySelector("[data-testid=custom-price]");
  const price = exactDecimal(form.dataset.centsPerCredit || "");
  const money = new Intl.NumberFormat("en-US", {style: "currency", currency: form.dataset.currency || "USD"});

  // "0.35" -> {units: 35n, scale: 100n}: the value is units / scale exactly.
  function exactDecimal(text) {
    const match = /^(\d+)(?:\.(\d+))?$/.exec(text.trim());
    if (!match) return null;
    const fraction = match[2] || "";
    return {units: BigInt(match[1] + fraction), scale: 10n ** BigInt(fraction.length)};
  }

  // Whole cents of `credits` at the list price, half up (amounts are never negative).
  function priceCents(credits) {
    const exact = credits * price.units;  // in cents, times price.scale
    return (exact * 2n + price.scale) / (price.scale * 2n);
  }

  function update() {
    const text = input.value.replace(/[,_\s]/g, "");
    if (!price || !/^\d+$/.test(text) || Number(text) < Number(form.dataset.min) || Number(text) > Number(form.dataset.max)) {
      out.textContent = "—";
      return;
    }
    const cents = priceCents(BigInt(text));
    // Formatted from a decimal string, so the digits stay exact.
    out.textContent = money.format(`${cents / 100n}.${String(cents % 100n).padStart(2, "0")}`);
  }
  input.addEventListener("input", update);
  update();
})();
