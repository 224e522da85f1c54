// Draws each <figure class="chart" data-metric=...> with uPlot from /api/metrics/{name}.
(function () {
  "use strict";
  const palette = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

  function scale(unit) {
    if (unit === "By") return [1 / (1 << 20), " MB"];
    if (unit === "1") return [100, " %"];
    if (unit === "s") return [1000, " ms"];
    return [1, ""];
  }

  function label(series) {
    const attributes = Object.entries(series.attributes || {}).map(([k, v]) => `${k}=${v}`);
    return attributes.length ? attributes.join(" ") : series.instance;
  }

  // One x axis for all series: the union of their timestamps, nulls where one has no point.
  function align(seriesList, pick) {
    const times = [...new Set(seriesList.flatMap((s) => pick(s).map((p) => p[0])))].sort((a, b) => a - b);
    const index = new Map(times.map((t, i) => [t, i]));
    const columns = seriesList.map((s) => {
      const column = new Array(times.length).fill(null);
      for (const [t, v] of pick(s)) column[index.get(t)] = v;
      return column;
    });
    return [times, ...columns];
  }

  async function draw(figure) {
    const plot = figure.querySelector(".plot");
    const params = new URLSearchParams({
      service: figure.dataset.service, instance: figure.dataset.instance, since: figure.dataset.since,
    });
    const response = await fetch(`/api/metrics/${encodeURIComponent(figure.dataset.metric)}?${params}`);
    if (!response.ok) { plot.textContent = `could not load: HTTP ${response.status}`; return; }
    const body = await response.json();
    const seriesList = body.series.slice(0, palette.length);
    if (!seriesList.length) { plot.textContent = "no points in this window"; return; }
    const asRate = seriesList[0].as_rate;
    const [factor, suffix] = asRate ? [1, "/s"] : scale(figure.dataset.unit);
    const data = align(seriesList, (s) => (asRate ? s.rate || [] : s.points)
      .map(([t, v]) => [t, v === null ? null : v * factor]));
    if (data[0].length < 1) { plot.textContent = "not enough points yet"; return; }
    const options = {
      width: Math.max(280, plot.clientWidth), height: 180,
      legend: { show: true, live: false },
      // The whole window, not just the span of the points: gaps and a lone point read right.
      scales: { x: { time: true, range: () => [body.since_ns / 1e9, Date.now() / 1000] } },
      axes: [{ stroke: "#6b7280", grid: { stroke: "#eef0f3" } },
             { stroke: "#6b7280", grid: { stroke: "#eef0f3" }, size: 60,
               values: (u, ticks) => ticks.map((v) => `${+v.toPrecision(3)}${suffix}`) }],
      series: [{}, ...seriesList.map((s, i) => ({
        label: label(s), stroke: palette[i], width: 1.5, spanGaps: true, points: { show: data[0].length < 40 },
      }))],
    };
    plot.textContent = "";
    new uPlot(options, data, plot);
  }

  document.querySelectorAll("figure.chart[data-metric]").forEach((figure) => {
    draw(figure).catch((error) => { figure.querySelector(".plot").textContent = String(error); });
  });
})();
