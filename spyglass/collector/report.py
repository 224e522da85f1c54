"""``spyglass report``: a terminal summary of a collector, read from its JSON API.

Standard library only, so the report runs wherever the sensor does, without the
collector's dependencies.
"""
import json
import textwrap
import time
from typing import NamedTuple
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode
from urllib.request import Request, urlopen

from .durations import format_duration_ms, parse_duration

RUNTIME_PREFIXES = ("process.", "cpython.")


class ReportError(Exception):
    """The collector could not be read; the message says why."""


def fetch(base_url, path, api_key="", **params):
    """The JSON at ``base_url + path`` with ``params`` (``None`` values left out)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    url = f"{base_url.rstrip('/')}{quote(path)}{'?' + query if query else ''}"
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        with urlopen(Request(url, headers=headers), timeout=15) as response:
            return json.load(response)
    except HTTPError as exc:
        raise ReportError(f"{url}: HTTP {exc.code}: {exc.read(300).decode(errors='replace')}") from None
    except (URLError, OSError, ValueError) as exc:
        raise ReportError(f"cannot read {url}: {getattr(exc, 'reason', exc)}; is spyglass serve "
                          f"running there? (--url names the collector)") from None


# -- layout ------------------------------------------------------------------------------

def fit(text, width):
    """``text`` cut to ``width`` columns, with an ellipsis when cut."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


class Column(NamedTuple):
    header: str
    key: object  # a row's dict key, or a function of the row
    size: int = 0  # 0: the one flexible column, which takes the rest and wraps
    align: str = "<"
    optional: bool = False  # dropped first when the terminal is too narrow

    def cell(self, row):
        return self.key(row) if callable(self.key) else row.get(self.key, "")


MIN_FLEX = 16


def table(rows, columns, width, max_lines=None):
    """Lines of a table at most ``width`` wide.

    Names are never cut: the flexible column wraps onto more lines instead (at most
    ``max_lines`` of them, for long statements), and optional columns give way first
    when the terminal is narrow.
    """
    columns = list(columns)
    while _fixed_width(columns) + MIN_FLEX > width and any(c.optional for c in columns):
        columns.remove(next(c for c in reversed(columns) if c.optional))
    flex = max(MIN_FLEX, width - _fixed_width(columns))
    sizes = [column.size or flex for column in columns]

    def line(cells):
        parts = [fit(cell, size).rjust(size) if column.align == ">" else fit(cell, size).ljust(size)
                 for cell, size, column in zip(cells, sizes, columns)]
        return ("  " + "  ".join(parts)).rstrip()

    lines = [line([column.header for column in columns])]
    for row in rows:
        cells = [str(column.cell(row)) for column in columns]
        flex_index = next((i for i, column in enumerate(columns) if not column.size), None)
        if flex_index is None:
            lines.append(line(cells))
            continue
        text = " ".join(cells[flex_index].split())
        if any(len(word) > flex for word in text.split()):
            # A name too long for its column: whole, on lines of its own, numbers below.
            lines += textwrap.wrap(text, width - 2, initial_indent="  ", subsequent_indent="  ",
                                   break_on_hyphens=False)
            text = ""
        wrapped = textwrap.wrap(text, flex, break_on_hyphens=False) or [""]
        if max_lines and len(wrapped) > max_lines:
            wrapped = wrapped[:max_lines - 1] + [fit(" ".join(wrapped[max_lines - 1:]), flex)]
        cells[flex_index] = wrapped[0]
        lines.append(line(cells))
        for more in wrapped[1:]:
            lines.append(line(["" if i != flex_index else more for i in range(len(columns))]))
    return lines


def _fixed_width(columns):
    return 2 + sum(column.size for column in columns) + 2 * (len(columns) - 1)


def _percent(ratio):
    return f"{100 * ratio:.1f}%" if ratio is not None else "-"


def _ms(value):
    return format_duration_ms(value)


def _ago(ns, now):
    if not ns:
        return "-"
    seconds = max(0, now - ns / 1e9)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def format_metric(value, unit, name):
    """A metric value for people: bytes scaled, ratios as percentages, seconds as durations."""
    if value is None:
        return "-"
    if unit == "By":
        for suffix, size in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
            if abs(value) >= size:
                return f"{value / size:.1f} {suffix}"
        return f"{value:.0f} B"
    if name.endswith("utilization"):
        return f"{100 * value:.1f}%"
    if unit == "s":
        return format_duration_ms(value * 1000)
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.3g}"


# -- sections ----------------------------------------------------------------------------

def _services(data, width, service=None):
    rows = [row for row in data["services"] if not service or row["service"] == service]
    if not rows:
        return ["  (no services reported in this window)"]
    return table(rows, [
        Column("service", "service"), Column("requests", "requests", 8, ">"),
        Column("errors", lambda r: _percent(r["error_rate"]), 6, ">"),
        Column("p50", lambda r: _ms(r["p50_ms"]), 7, ">", optional=True),
        Column("p95", lambda r: _ms(r["p95_ms"]), 7, ">"),
        Column("p99", lambda r: _ms(r["p99_ms"]), 7, ">", optional=True),
        Column("procs", "instances", 5, ">", optional=True),
    ], width)


def _where(row, what):
    return f"{row['service']} · {row[what]}"


def _routes(data, width, limit=10):
    rows = data["routes"][:limit]
    if not rows:
        return ["  (no requests in this window)"]
    return table(rows, [
        Column("service · route", lambda r: _where(r, "name")), Column("reqs", "requests", 6, ">"),
        Column("errors", lambda r: _percent(r["error_rate"]), 6, ">"),
        Column("p95", lambda r: _ms(r["p95_ms"]), 7, ">"),
        Column("p99", lambda r: _ms(r["p99_ms"]), 7, ">", optional=True),
    ], width)


def _calls(data, width):
    rows = data["calls"]
    if not rows:
        return ["  (no calls in this window)"]
    return table(rows, [
        Column("service · call", lambda r: _where(r, "label")), Column("kind", "category", 6),
        Column("count", "count", 6, ">"), Column("total", lambda r: _ms(r["total_ms"]), 7, ">"),
        Column("p95", lambda r: _ms(r["p95_ms"]), 7, ">", optional=True),
    ], width, max_lines=3)


def _errors(data, width, now):
    rows = data["groups"]
    if not rows:
        return ["  (no errors in this window)"]
    return table(rows, [
        Column("service · error", lambda r: f"{r['service']} · {r['type']}: {r['message']}"),
        Column("count", "count", 6, ">"), Column("users", "users", 5, ">", optional=True),
        Column("last seen", lambda r: _ago(r["last_seen_ns"], now), 9, ">"),
    ], width, max_lines=2)


# The runtime figures a reader scans for, one row per process: (header, metric). A metric
# with several series (CPU user/system, GC generations) shows their sum.
PROCESS_COLUMNS = (
    ("cpu", "process.cpu.utilization"),
    ("memory", "process.memory.usage"),
    ("threads", "process.thread.count"),
    ("fds", "process.open_file_descriptor.count"),
    ("gc runs", "cpython.gc.collections"),
    ("uptime", "process.uptime"),
)


def _metrics(data, width):
    by_process = {}
    for metric in data["metrics"]:
        if metric["name"].startswith(RUNTIME_PREFIXES) and metric["kind"] in ("gauge", "sum"):
            process = by_process.setdefault((metric["service"], metric["instance"]), {})
            process.setdefault(metric["name"], []).append(metric)
    rows = []
    for (service, instance), metrics in sorted(by_process.items()):
        row = {"process": f"{service} · {instance}"}
        for header, name in PROCESS_COLUMNS:
            found = metrics.get(name)
            row[header] = "-" if not found else format_metric(
                sum(m["value"] for m in found if m["value"] is not None), found[0]["unit"], name)
        rows.append(row)
    if not rows:
        return ["  (no runtime metrics in this window)"]
    return table(rows, [Column("service · process", "process")] + [
        Column(header, header, 9, ">", optional=header in ("fds", "gc runs"))
        for header, _name in PROCESS_COLUMNS], width)


def check_service(url, service, api_key="", services=None):
    """ReportError unless the collector knows ``service`` (it sent something, at any time
    still kept): the names it knows instead. ``services``: the answer of ``/api/services``
    for the report's window, where it usually is."""
    in_window = (services or {}).get("services", ())
    if not service or any(row["service"] == service for row in in_window):
        return
    known = [row["service"] for row in fetch(url, "/api/services", api_key, start=0)["services"]]
    if service not in known:
        raise ReportError(f"no service {service!r} at {url}; "
                          + (f"its services: {', '.join(known)}" if known else "it has none yet"))


def render_report(url, since="15m", service=None, api_key="", width=80):
    """The whole report as text, at most ``width`` columns wide."""
    parse_duration(since)  # refuse a bad window before asking the collector
    now = time.time()
    ask = lambda path, **params: fetch(url, path, api_key, since=since, service=service, **params)  # noqa: E731
    services = ask("/api/services")
    check_service(url, service, api_key, services)
    sections = [
        ("SERVICES", _services(services, width, service)),
        ("ROUTES BY P95", _routes(ask("/api/routes"), width)),
        ("SLOWEST CALLS BY TOTAL TIME", _calls(ask("/api/slow-calls", sort="total", limit=10, all=1), width)),
        ("TOP ERROR GROUPS", _errors(ask("/api/errors", limit=10), width, now)),
        ("LATEST RUNTIME METRICS", _metrics(ask("/api/metrics"), width)),
    ]
    header = textwrap.wrap(f"spyglass report — {url} — last {since}", width)
    lines = [*header, "=" * max(map(len, header))]
    for title, body in sections:
        lines += ["", title, *body]
    return "\n".join(line[:width] for line in lines)


def render_profile(url, route, since="15m", service=None, api_key="", width=80, top=10):
    """``spyglass report --profile ROUTE``: where the route's requests spent their time, from
    the profiles linked to its traces: the functions most often innermost (self time), then
    the stacks most often seen, innermost frame first."""
    parse_duration(since)
    check_service(url, service, api_key)
    profile = fetch(url, "/api/profile", api_key, since=since, service=service, route=route,
                    limit=5000)
    total = profile["samples"]
    header = textwrap.wrap(f"spyglass report — {url} — profile of {route} — last {since} — "
                           f"{total} samples", width)
    lines = [*header, "=" * max(map(len, header))]
    if not total:
        return "\n".join(lines + ["", "  (no profiles of this route in this window: is the "
                                      "sensor started with SPYGLASS_PROFILING=true?)"])
    self_samples = {}
    for stack in profile["stacks"]:
        leaf = stack["frames"][-1]
        self_samples[leaf] = self_samples.get(leaf, 0) + stack["samples"]
    hottest = sorted(self_samples.items(), key=lambda item: -item[1])[:top]
    share = lambda samples: _percent(samples / total)  # noqa: E731
    lines += ["", "HOTTEST FUNCTIONS (samples where innermost)", *table(
        [{"function": name, "samples": samples} for name, samples in hottest],
        [Column("function", "function"), Column("samples", "samples", 7, ">"),
         Column("share", lambda r: share(r["samples"]), 6, ">")], width)]
    lines += ["", "TOP STACKS (innermost first)"]
    for stack in profile["stacks"][:top]:
        lines.append(f"  {stack['samples']:>7}  {share(stack['samples']):>6}")
        lines += [f"      {fit(frame, width - 6)}" for frame in reversed(stack["frames"][-8:])]
        if len(stack["frames"]) > 8:
            lines.append(f"      … {len(stack['frames']) - 8} outer frames")
    return "\n".join(line[:width] for line in lines)
