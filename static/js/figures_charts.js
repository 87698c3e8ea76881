// The business figures' charts (admin → Business figures): a stacked bar per
// day for each canvas[data-chart], its data in the <script> the attribute
// names. Chart.js is served by Tollgate itself (static/vendor/chartjs); the
// same figures are in the tables beside each chart.
(function () {
  if (!window.Chart) return;
  const number = new Intl.NumberFormat("en-US", {maximumFractionDigits: 2});
  const reduced = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
    const source = document.getElementById(canvas.dataset.chart);
    if (!source) return;
    const data = JSON.parse(source.textContent);
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: data.series.map((s) => ({
          label: s.label, data: s.data, backgroundColor: s.colour, borderRadius: 2, maxBarThickness: 28,
        })),
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: reduced ? false : {duration: 300},
        interaction: {mode: "index", intersect: false},
        scales: {
          x: {stacked: true, grid: {display: false}, ticks: {maxRotation: 0, autoSkipPadding: 12}},
          y: {stacked: true, beginAtZero: true, title: {display: true, text: "Credits"},
              ticks: {callback: (v) => number.format(v)}},
        },
        plugins: {
          legend: {display: false},
          tooltip: {callbacks: {label: (ctx) => `${ctx.dataset.label}: ${number.format(ctx.parsed.y)} credits`}},
        },
      },
    });
  });
})();
