// The usage chart: a stacked bar per day, week or month, one colour per
// meter / model / member / run. Chart.js is served by Tollgate itself
// (static/vendor/chartjs). The figures are also in the tables beside it.
(function () {
  const canvas = document.getElementById("usage-chart");
  const source = document.getElementById("usage-chart-data");
  if (!canvas || !source || !window.Chart) return;
  const data = JSON.parse(source.textContent);
  // Distinct at a glance and for common colour blindness; grey is "Other".
  const palette = ["#3046c5", "#e19a1b", "#11784a", "#b42318", "#7c3aed", "#0e7490"];
  const colour = (s, i) => (s.other ? "#9aa4b2" : palette[i % palette.length]);
  document.querySelectorAll(".swatch[data-series]").forEach((el) => {
    const i = Number(el.dataset.series);
    if (data.series[i]) el.style.background = colour(data.series[i], i);
  });
  const number = new Intl.NumberFormat("en-US", {maximumFractionDigits: 2});
  const reduced = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: data.series.map((s, i) => ({
        label: s.label, data: s.data, backgroundColor: colour(s, i), borderRadius: 2, maxBarThickness: 42,
      })),
    },
    options: {
      responsive: true, maintainAspectRatio: false, animation: reduced ? false : {duration: 300},
      interaction: {mode: "index", intersect: false},
      scales: {
        x: {stacked: true, grid: {display: false}, ticks: {maxRotation: 0, autoSkipPadding: 12, color: "#4a5668"}},
        y: {stacked: true, beginAtZero: true, title: {display: true, text: "Credits", color: "#4a5668"},
            ticks: {color: "#4a5668", callback: (v) => number.format(v)}, grid: {color: "#e6eaf0"}},
      },
      plugins: {
        legend: {position: "bottom", labels: {boxWidth: 12, color: "#16202e"}},
        tooltip: {callbacks: {label: (ctx) => `${ctx.dataset.label}: ${number.format(ctx.parsed.y)} credits`}},
      },
    },
  });
})();
