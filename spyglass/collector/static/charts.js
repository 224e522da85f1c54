// Charts of the service page and the metrics page, drawn with uPlot.
//   <figure class="chart" data-series="throughput|latency|errors" data-url=...>: a service over time
//   <figure class="chart" data-service-metric=NAME data-url=... data-process-url=...>: a metric of a
//   service, its processes summed or averaged; per process when its section's toggle is on.
(function () {
  "use strict";
  const palette = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
  const HEIGHT = 180;
  const FONT = "12px system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif";

  // A unit's display: the factor values are multiplied by and the suffix of the tick labels,
  // chosen from the largest value so that a tick reads "43.5 MB", not "43500000".
  function display(unit, largest, perSecond) {
    const max = Math.abs(largest || 0);
    const rate = perSecond ? "/s" : "";
    if (unit === "By") {
      for (const [size, name] of [[2 ** 40, "TB"], [2 ** 30, "GB"], [2 ** 20, "MB"], [2 ** 10, "KB"]]) {
        if (max >= size) return { factor: 1 / size, suffix: ` ${name}${rate}` };
      }
      return { factor: 1, suffix: ` B${rate}` };
    }
    if (unit === "1" && !perSecond) return { factor: 100, suffix: " %" };
    if (unit === "s" || unit === "ms") {
      const seconds = unit === "s" ? max : max / 1000;
      if (perSecond) return { factor: unit === "s" ? 1 : 1 / 1000, suffix: " s/s" };
      if (seconds >= 1) return { factor: unit === "s" ? 1 : 1 / 1000, suffix: " s" };
      if (seconds >= 0.001 || !seconds) return { factor: unit === "s" ? 1000 : 1, suffix: " ms" };
      return { factor: unit === "s" ? 1e6 : 1000, suffix: " µs" };
    }
    const name = (unit || "").replace(/^\{|\}$/g, "");
    return { factor: 1, suffix: (name ? ` ${name}` : "") + rate };
  }

  // The decimals that write ``step`` exactly (2.5 -> 1, 0.25 -> 2, 50 -> 0), at most 6.
  function decimalsOf(step) {
    for (let d = 0; d < 6; d++) {
      const scaled = step * 10 ** d;
      if (Math.abs(scaled - Math.round(scaled)) < 1e-6 * Math.max(1, scaled)) return d;
    }
    return 6;
  }

  // Tick labels with as many decimals as the tick step needs: neighbours never read the same.
  function ticks(suffix) {
    return (u, splits, axisIdx, space, increment) => {
      const decimals = decimalsOf(increment || 1);
      const labels = splits.map((v) => (v == null ? "" : `${v.toFixed(decimals)}${suffix}`));
      const figure = u.root.closest("figure");
      if (figure) figure.dataset.yTicks = labels.join("|");  // what the axis shows, for tests to read
      return labels;
    };
  }

  // Time ticks on one line: seconds where ticks are seconds apart, the date where days apart.
  const pad = (n) => String(n).padStart(2, "0");
  function timeTicks(u, splits, axisIdx, space, increment) {
    return splits.map((t) => {
      const d = new Date(t * 1000);
      if (increment >= 86400) return `${d.getMonth() + 1}/${d.getDate()}`;
      const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
      return increment < 60 ? `${hm}:${pad(d.getSeconds())}` : hm;
    });
  }

  const measure = document.createElement("canvas").getContext("2d");
  // The y axis as wide as its longest label (uPlot's fixed default clips "43.5 MB" to "3.5 MB").
  function axisSize(u, values) {
    measure.font = FONT;
    const widest = Math.max(0, ...(values || []).map((v) => measure.measureText(v).width));
    const figure = u.root.closest("figure");
    if (figure) figure.dataset.yLabelWidth = Math.ceil(widest);
    return Math.ceil(widest) + 18;
  }

  // Vertical lines where releases started, each labelled with its version.
  function markersPlugin(markers) {
    return {
      hooks: {
        draw: [(u) => {
          u.root.closest("figure").dataset.markers = markers.map((m) => m.label).join("|");
          const ctx = u.ctx;
          const { top, height } = u.bbox;
          ctx.save();
          ctx.font = `${Math.round(11 * devicePixelRatio)}px system-ui, sans-serif`;
          let labelEnd = -Infinity, row = 0;
          for (const { t, label } of markers) {
            const x = Math.round(u.valToPos(t, "x", true));
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
            row = x < labelEnd ? row + 1 : 0;  // a label that would overlap the last goes a row lower
            ctx.strokeStyle = "#7c3aed";
            ctx.lineWidth = 1.5 * devicePixelRatio;
            ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
            ctx.fillStyle = "#6d28d9";
            ctx.fillText(label, x + 4 * devicePixelRatio, top + (12 + 13 * row) * devicePixelRatio);
            labelEnd = Math.max(labelEnd, x + 8 * devicePixelRatio + ctx.measureText(label).width);
          }
          ctx.restore();
        }],
      },
    };
  }

  // A legend of our own below the plot: wraps within the chart's box, never widens it.
  function legend(figure, labels) {
    let box = figure.querySelector(".legend");
    if (!box) {
      box = document.createElement("div");
      box.className = "legend";
      figure.appendChild(box);
    }
    box.textContent = "";
    labels.forEach((text, i) => {
      const item = document.createElement("span");
      item.innerHTML = `<i style="background:${palette[i % palette.length]}"></i>`;
      item.appendChild(document.createTextNode(text));
      item.title = text;
      box.appendChild(item);
    });
  }

  function plot(figure, data, labels, unit, { perSecond = false, markers = [], xRange = null } = {}) {
    const box = figure.querySelector(".plot");
    const largest = Math.max(0, ...data.slice(1).flat().filter((v) => v != null).map(Math.abs));
    const { factor, suffix } = display(unit, largest, perSecond);
    const scaled = [data[0], ...data.slice(1).map((column) => column.map((v) => (v == null ? null : v * factor)))];
    if (!xRange && data[0].length === 1) xRange = [data[0][0] - 60, data[0][0] + 60];  // a lone point, centred
    const options = {
      width: Math.max(260, box.clientWidth), height: HEIGHT,
      legend: { show: false },
      scales: { x: { time: true, ...(xRange ? { range: () => xRange } : {}) },
                y: { range: (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.08 : 1] } },
      axes: [{ stroke: "#6b7280", grid: { stroke: "#eef0f3" }, font: FONT, space: 70, values: timeTicks },
             { stroke: "#6b7280", grid: { stroke: "#eef0f3" }, font: FONT, size: axisSize, values: ticks(suffix) }],
      series: [{}, ...labels.map((label, i) => ({
        label, stroke: palette[i % palette.length], width: 1.5, spanGaps: false,
        points: { show: data[0].length < 40 },
      }))],
      plugins: markers.length ? [markersPlugin(markers)] : [],
    };
    box.textContent = "";
    new uPlot(options, scaled, box);
    legend(figure, labels);
  }

  // -- the service page ------------------------------------------------------------------

  const SERVICE_CHARTS = {
    throughput: { columns: ["rps"], labels: ["requests/s"], unit: "" },
    latency: { columns: ["p50_ms", "p95_ms", "p99_ms"], labels: ["p50", "p95", "p99"], unit: "ms" },
    errors: { columns: ["error_rate"], labels: ["error rate"], unit: "1" },
  };

  async function drawService(figures) {
    const response = await fetch(figures[0].dataset.url);
    if (!response.ok) throw new Error(`could not load: HTTP ${response.status}`);
    const body = await response.json();
    const markers = body.releases.filter((r) => r.marker)
      .map((r) => ({ t: r.first_ns / 1e9, label: r.version || "(no version)" }));
    // From the first bucket with requests (less one) to now: the data, not an empty window.
    const first = body.series.requests.findIndex((count) => count > 0);
    const start = first > 0 ? body.series.t[first - 1] : body.since_ns / 1e9;
    const range = [start, body.until_ns / 1e9];
    for (const figure of figures) {
      const chart = SERVICE_CHARTS[figure.dataset.series];
      const data = [body.series.t, ...chart.columns.map((name) => body.series[name])];
      plot(figure, data, chart.labels, chart.unit, { markers, xRange: range });
    }
  }

  // -- the metrics page ------------------------------------------------------------------

  function attributeLabel(attributes) {
    return Object.entries(attributes || {}).map(([k, v]) => `${k}=${v}`).join(" ");
  }

  // One x axis for all series: the union of their timestamps, nulls where one has no point.
  function align(pointLists) {
    const times = [...new Set(pointLists.flatMap((points) => points.map((p) => p[0])))].sort((a, b) => a - b);
    const index = new Map(times.map((t, i) => [t, i]));
    return [times, ...pointLists.map((points) => {
      const column = new Array(times.length).fill(null);
      for (const [t, v] of points) column[index.get(t)] = v;
      return column;
    })];
  }

  async function drawMetric(figure, perProcess) {
    const box = figure.querySelector(".plot");
    const response = await fetch(perProcess ? figure.dataset.processUrl : figure.dataset.url);
    if (!response.ok) { box.textContent = `could not load: HTTP ${response.status}`; return; }
    const body = await response.json();
    const unit = figure.dataset.unit;
    let series, labels, perSecond;
    if (perProcess) {  // /api/metrics/{name}: a series per process and attribute set
      const list = body.series.slice(0, palette.length);
      perSecond = list.length > 0 && list[0].as_rate;
      series = list.map((s) => (perSecond ? s.rate || [] : s.points));
      labels = list.map((s) => [s.instance, attributeLabel(s.attributes)].filter(Boolean).join(" "));
    } else {  // /api/services/{service}/metrics/{name}: the processes added up
      const list = body.series.slice(0, palette.length);
      perSecond = body.as_rate;
      series = list.map((s) => s.points);
      labels = list.map((s) => attributeLabel(s.attributes) || `${body.aggregation} of ${s.instances} process${s.instances === 1 ? "" : "es"}`);
    }
    const data = align(series);
    if (!data[0].length) { box.textContent = "no points in this window"; figure.querySelector(".legend")?.remove(); return; }
    plot(figure, data, labels, unit, { perSecond });
  }

  function report(figure, error) { figure.querySelector(".plot").textContent = String(error); }

  const serviceFigures = [...document.querySelectorAll("figure.chart[data-series]")];
  if (serviceFigures.length) drawService(serviceFigures).catch((error) => serviceFigures.forEach((f) => report(f, error)));

  // Charts are drawn as they scroll into view: a page of many services asks only for what is seen.
  const metricFigures = document.querySelectorAll("figure.chart[data-service-metric]");
  const drawOnce = (figure) => {
    if (figure.dataset.drawn) return;
    figure.dataset.drawn = "1";
    drawMetric(figure, false).catch((error) => report(figure, error));
  };
  if ("IntersectionObserver" in window) {
    const observer = new IntersectionObserver((entries) => entries.forEach((entry) => {
      if (entry.isIntersecting) { observer.unobserve(entry.target); drawOnce(entry.target); }
    }), { rootMargin: "300px" });
    metricFigures.forEach((figure) => observer.observe(figure));
  } else {
    metricFigures.forEach(drawOnce);
  }

  // The latest value of each metric of each process, fetched when first opened.
  const formatLatest = (m) => {
    if (m.value == null) return "-";
    const { factor, suffix } = display(m.unit, m.value, false);
    const v = m.value * factor;
    return `${Math.abs(v) >= 100 ? v.toFixed(0) : +v.toPrecision(3)}${suffix}`;
  };
  document.querySelectorAll("details.latest").forEach((details) => {
    details.addEventListener("toggle", async () => {
      if (!details.open || details.dataset.loaded) return;
      details.dataset.loaded = "1";
      const box = details.querySelector(".latest-values");
      const response = await fetch(details.dataset.url);
      if (!response.ok) { box.textContent = `could not load: HTTP ${response.status}`; return; }
      const byProcess = new Map();
      for (const m of (await response.json()).metrics) {
        if (!byProcess.has(m.instance)) byProcess.set(m.instance, []);
        byProcess.get(m.instance).push(m);
      }
      box.textContent = "";
      for (const [instance, metrics] of byProcess) {
        const heading = document.createElement("h4");
        heading.textContent = `process ${instance}`;
        const table = document.createElement("table");
        table.className = "data";
        table.innerHTML = "<thead><tr><th>metric</th><th>attributes</th><th>kind</th><th class=num>latest</th></tr></thead>";
        const body = table.createTBody();
        for (const m of metrics) {
          const row = body.insertRow();
          [m.name, attributeLabel(m.attributes), m.kind, formatLatest(m)].forEach((text, i) => {
            const cell = row.insertCell();
            cell.textContent = text;
            if (i === 3) cell.className = "num";
          });
        }
        box.append(heading, table);
      }
      if (!byProcess.size) box.textContent = "no metrics in this window";
    });
  });
  document.querySelectorAll("input.per-process").forEach((toggle) => {
    toggle.addEventListener("change", () => {
      toggle.closest("section").querySelectorAll("figure.chart[data-service-metric]").forEach((figure) => {
        figure.dataset.drawn = "1";
        drawMetric(figure, toggle.checked).catch((error) => report(figure, error));
      });
    });
  });
})();
