// The logs page's live tail: while "live tail" is on, the records that arrived since
// (with the page's filters) are fetched every two seconds and put on top.
(function () {
  "use strict";
  const EVERY_MS = 2000;
  const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];
  const table = document.querySelector("table.logs");
  const toggle = document.getElementById("live-tail");
  const state = document.getElementById("tail-state");
  if (!table || !toggle) return;
  const body = table.tBodies[0];
  const seen = new Set([...body.rows].map((row) => row.dataset.key));
  let timer = null;

  const pad = (n, width = 2) => String(n).padStart(width, "0");
  function when(ns) {
    const d = new Date(Math.floor(ns / 1e6));
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }
  function levelName(severity) {
    return severity >= 1 ? LEVELS[Math.min(LEVELS.length - 1, Math.floor((severity - 1) / 4))] : "-";
  }
  function keyOf(log) { return `${log.time_ns}|${log.span_id || ""}|${(log.body || "").slice(0, 200)}`; }

  function cell(row, className, content) {
    const td = row.insertCell();
    if (className) td.className = className;
    if (content instanceof Node) td.append(content); else td.textContent = content;
    return td;
  }
  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    node.textContent = text;
    return node;
  }

  function rowOf(log) {
    const row = document.createElement("tr");
    const level = levelName(log.severity_number);
    row.className = `level-${level} fresh`;
    row.dataset.key = keyOf(log);
    cell(row, "time", when(log.time_ns));
    cell(row, "", element("span", "service", log.service));
    cell(row, "", element("span", "level", log.severity_text || level));
    cell(row, "", element("code", "", log.logger || ""));
    const attributes = log.attributes || {};
    cell(row, "message", log.event_name === "spyglass.error"
      ? `error event: ${attributes["exception.type"]}: ${attributes["exception.message"]}` : (log.body || ""));
    const trace = cell(row, "", "");
    if (log.trace_id) {
      const link = element("a", "trace-link", "");
      link.href = `/traces/${log.trace_id}${log.span_id ? `#span-${log.span_id}` : ""}`;
      link.append(element("code", "", log.trace_id.slice(0, 8)));
      if (log.span_id) link.append(" / ", element("code", "", log.span_id.slice(0, 8)));
      trace.append(link);
    }
    return row;
  }

  async function poll() {
    const params = new URLSearchParams(table.dataset.query);
    params.delete("tail");
    params.set("limit", "200");
    try {
      const response = await fetch(`/api/logs?${params}`);
      if (!response.ok) { state.textContent = `HTTP ${response.status}`; return; }
      const fresh = (await response.json()).logs.filter((log) => !seen.has(keyOf(log)));
      for (const log of fresh.reverse()) {  // oldest first, each put on top
        seen.add(keyOf(log));
        body.insertBefore(rowOf(log), body.firstChild);
      }
      if (fresh.length) document.getElementById("no-logs")?.remove();
      state.textContent = `live · checked ${when(Date.now() * 1e6).slice(11, 19)}`;
    } catch (error) {
      state.textContent = String(error);
    }
  }

  function apply() {
    const url = new URL(window.location.href);
    if (toggle.checked) url.searchParams.set("tail", "1"); else url.searchParams.delete("tail");
    history.replaceState(null, "", url);  // a shared link tails too
    clearInterval(timer);
    timer = null;
    if (toggle.checked) { poll(); timer = setInterval(poll, EVERY_MS); } else { state.textContent = ""; }
  }
  toggle.addEventListener("change", apply);
  if (toggle.checked) apply();
})();
