// The error page: the state buttons (POST /api/errors/{id} with JSON) and the frequency chart.
(function () {
  "use strict";

  document.querySelectorAll("form.state-control").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const problem = form.querySelector(".state-problem");
      const state = event.submitter ? event.submitter.value : "resolved";
      form.querySelectorAll("button").forEach((button) => { button.disabled = true; });
      try {
        const response = await fetch(form.action, {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ state }),
        });
        if (!response.ok) {
          const body = await response.json().catch(() => ({}));
          throw new Error(body.error || `HTTP ${response.status}`);
        }
        window.location.reload();
      } catch (error) {
        problem.textContent = `could not change the state: ${error.message}`;
        form.querySelectorAll("button").forEach((button) => { button.disabled = false; });
      }
    });
  });

  document.querySelectorAll("figure.frequency[data-points]").forEach((figure) => {
    const plot = figure.querySelector(".plot");
    const points = JSON.parse(figure.dataset.points);
    if (!points.length) { plot.textContent = "no events in this window"; return; }
    const step = points.length > 1 ? points[1][0] - points[0][0] : 60;
    const bars = uPlot.paths.bars({ size: [0.9, 40], align: 1 });
    const options = {
      width: Math.max(280, plot.clientWidth), height: 140,
      legend: { show: false },
      scales: { x: { time: true, range: () => [points[0][0], points[points.length - 1][0] + step] },
                y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      axes: [{ stroke: "#6b7280", grid: { stroke: "#eef0f3" } },
             { stroke: "#6b7280", grid: { stroke: "#eef0f3" }, size: 50,
               values: (u, ticks) => ticks.map((v) => (Number.isInteger(v) ? String(v) : "")) }],
      series: [{}, { label: "events", stroke: "#dc2626", fill: "rgba(220, 38, 38, 0.35)", paths: bars,
                     points: { show: false } }],
    };
    plot.textContent = "";
    // An empty bucket draws no bar (a zero-height one would still draw its outline).
    new uPlot(options, [points.map((p) => p[0]), points.map((p) => p[1] || null)], plot);
  });
})();
