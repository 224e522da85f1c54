// The traces page's duration scatter: each request the filters select as a point (time,
// duration), errors in red; a click on a point opens its trace.
(function () {
  "use strict";
  const MAX_POINTS = 1000;
  const NEAR_PX = 12;

  function columns(traces) {
    const sorted = traces.slice().sort((a, b) => a.start_ns - b.start_ns);
    return {
      traces: sorted,
      data: [sorted.map((t) => t.start_ns / 1e9),
             sorted.map((t) => (t.is_error ? null : t.duration_ms)),
             sorted.map((t) => (t.is_error ? t.duration_ms : null))],
    };
  }

  // The point nearest the mouse (an event on the plot), in pixels, if one is within NEAR_PX.
  function nearest(u, traces, event) {
    const box = u.over.getBoundingClientRect();
    const left = event.clientX - box.left;
    const top = event.clientY - box.top;
    let best = null;
    let bestDistance = NEAR_PX * NEAR_PX;
    traces.forEach((t, i) => {
      const dx = u.valToPos(u.data[0][i], "x") - left;
      const dy = u.valToPos(t.duration_ms, "y") - top;
      const distance = dx * dx + dy * dy;
      if (distance <= bestDistance) { best = t; bestDistance = distance; }
    });
    return best;
  }

  function milliseconds(v) {
    return v >= 1000 ? `${+(v / 1000).toPrecision(3)} s` : `${+v.toPrecision(3)} ms`;
  }

  async function draw(figure) {
    const plot = figure.querySelector(".plot");
    const params = new URLSearchParams(figure.dataset.query);
    params.set("limit", String(MAX_POINTS));
    const response = await fetch(`/api/traces?${params}`);
    if (!response.ok) { plot.textContent = `could not load: HTTP ${response.status}`; return; }
    const body = await response.json();
    const { traces, data } = columns(body.traces);
    figure.querySelector(".count").textContent =
      `${traces.length}${traces.length >= MAX_POINTS ? " newest" : ""} request${traces.length === 1 ? "" : "s"}`;
    if (!traces.length) { plot.textContent = "no request in this window"; return; }
    // The x axis fits the points (a few seconds of requests in a 1 h window are not a line).
    const first = data[0][0];
    const last = data[0][data[0].length - 1];
    const pad = Math.max(1, (last - first) * 0.03);
    const points = (color) => ({ paths: () => null, stroke: color, fill: color,
                                 points: { show: true, size: 6, space: 0, stroke: color, fill: color } });
    const options = {
      width: Math.max(300, plot.clientWidth), height: 200,
      legend: { show: false },
      cursor: { points: { show: false }, drag: { x: false, y: false } },
      scales: { x: { time: true, range: () => [first - pad, last + pad] },
                y: { range: (u, min, max) => [0, Math.max(1, max) * 1.08] } },
      axes: [{ stroke: "#6b7280", grid: { stroke: "#eef0f3" } },
             { stroke: "#6b7280", grid: { stroke: "#eef0f3" }, size: 64,
               values: (u, ticks) => ticks.map(milliseconds) }],
      series: [{}, { label: "ok", ...points("rgba(37, 99, 235, 0.7)") },
               { label: "error", ...points("rgba(220, 38, 38, 0.85)") }],
    };
    plot.textContent = "";
    const u = new uPlot(options, data, plot);
    u.over.addEventListener("mousemove", (event) => {
      const t = nearest(u, traces, event);
      u.over.classList.toggle("on-point", !!t);
      u.over.title = t ? `${t.name} · ${milliseconds(t.duration_ms)} · ${t.trace_id}` : "";
    });
    u.over.addEventListener("click", (event) => {
      const t = nearest(u, traces, event);
      if (t) window.location.href = `/traces/${t.trace_id}`;
    });
    figure.uplot = u;  // for a test to find where a point is drawn
    figure.dataset.drawn = String(traces.length);
  }

  document.querySelectorAll("figure.scatter").forEach((figure) => {
    draw(figure).catch((error) => { figure.querySelector(".plot").textContent = String(error); });
  });
})();
