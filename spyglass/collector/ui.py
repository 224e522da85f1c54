"""The web UI: server-rendered pages over the same payloads the JSON API returns.

Jinja2 renders them with autoescaping on: everything shown comes from senders, so
everything is escaped. Charts are drawn in the browser by uPlot (vendored under
``static/``, no CDN) from ``/api/metrics/{name}``.
"""
import re
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

from .api import ApiError
from .durations import format_duration_ms
from .report import format_metric

TEMPLATES_DIR = Path(__file__).parent / "templates"
#: What hints name when the server does not say where it listens.
DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
#: How far back a service filter looks for services to offer.
SERVICE_FILTER_DAYS = 30
NS = 1_000_000_000
#: Charted on the metrics page, in this order, when a process reports them.
CHART_METRICS = (
    "process.cpu.utilization", "process.cpu.time", "process.memory.usage", "process.memory.virtual",
    "process.thread.count", "process.open_file_descriptor.count", "process.context_switches",
    "process.paging.faults", "cpython.gc.collections", "cpython.gc.collected_objects",
    "cpython.gc.pause_time", "http.server.request.duration", "db.client.operation.duration",
    "spyglass.queue.queued", "spyglass.queue.dropped",
)

#: Metric name prefixes of what the sensor reports by itself; other names are custom metrics
#: (``spyglass.metrics.counter/gauge/histogram`` or any OTLP sender's).
RUNTIME_PREFIXES = ("process.", "cpython.", "python.", "spyglass.", "http.server.", "db.client.")


def _when(ns):
    """A unix-ns instant as local date and time; what is not one, as it is."""
    if not ns:
        return "-"
    try:
        return datetime.fromtimestamp(ns / NS).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):  # not a number, or past year 9999
        return str(ns)


def _when_ms(ns):
    """A unix-ns instant as local date and time to the millisecond: a burst of requests
    reads as one."""
    text = _when(ns)
    if text in ("-", str(ns)):
        return text
    return f"{text}.{ns // 1_000_000 % 1000:03d}"


def _ago(ns):
    if not ns or not isinstance(ns, (int, float)) or ns != ns:
        return "-"
    seconds = max(0.0, time.time() - ns / NS)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _unit_label(unit):
    """A metric's UCUM unit as the charts show it."""
    return {"By": "MB", "1": "%", "s": "ms", "": ""}.get(unit or "", (unit or "").strip("{}"))


def _step_label(ns):
    """A bucket's length, as round as it is: ``15 s``, ``5 min``, ``3 h``, ``2 d``."""
    seconds = (ns or 0) / NS
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _percent(ratio):
    return "-" if ratio is None else f"{100 * ratio:.1f}%"


class Ui:
    """Maps page paths to templates; each page asks the API for its data."""

    WINDOWS = ("5m", "15m", "1h", "6h", "24h", "7d")

    def __init__(self, api):
        self.api = api
        self._environment = None
        self._pages = [
            (re.compile(r"/"), self.services),
            (re.compile(r"/traces"), self.traces),
            (re.compile(r"/traces/(?P<trace_id>[0-9a-fA-F]{32})"), self.trace),
            (re.compile(r"/slow-calls"), self.slow_calls),
            (re.compile(r"/errors"), self.errors),
            (re.compile(r"/errors/(?P<group_id>[0-9]+)"), self.error),
            (re.compile(r"/metrics"), self.metrics),
            (re.compile(r"/profile"), self.profile),
            (re.compile(r"/services/(?P<service>[^\0]+)"), self.service),
            (re.compile(r"/trace"), self.find_trace),
            (re.compile(r"/traces/(?P<prefix>[0-9a-fA-F]{1,31})"), self.find_trace),
            (re.compile(r"/logs"), self.logs),
        ]

    @property
    def environment(self):
        if self._environment is None:
            import jinja2

            environment = jinja2.Environment(
                loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), autoescape=True,
                # Events are made by senders: any field may be missing, and that is fine.
                trim_blocks=True, lstrip_blocks=True, undefined=jinja2.ChainableUndefined)
            environment.filters.update(ms=format_duration_ms, when=_when, ago=_ago, percent=_percent,
                                       unit_label=_unit_label, metric=format_metric)
            environment.filters.update(when_ms=_when_ms, level_name=level_name)
            environment.globals.update(windows=self.WINDOWS, urlencode=urlencode)
            environment.filters.update(sparkline=sparkline, step=_step_label)
            self._environment = environment
        return self._environment

    def page(self, path, query, endpoint=DEFAULT_ENDPOINT):
        """``(status, content_type, html bytes)`` for a UI path; ``endpoint``: the address
        this collector listens on, as hints for sensors name it.

        Each page method returns ``(template, context)``; a ``None`` context is a 404.
        """
        for pattern, render in self._pages:
            match = pattern.fullmatch(path.rstrip("/") or "/")
            if match:
                try:
                    template, context = render(query, **match.groupdict())
                except ApiError as exc:
                    return self._html(exc.status, "error.html", {"status": exc.status, "reason": exc.reason},
                                      query, path, endpoint)
                if template == REDIRECT:
                    return 303, "text/plain; charset=utf-8", context.encode(), {"Location": context}
                if context is None:
                    return self._html(404, "error.html", {"status": 404, "reason": f"nothing at {path}"},
                                      query, path, endpoint)
                return self._html(200, template, context, query, path, endpoint)
        return self._html(404, "error.html", {"status": 404, "reason": f"no page at {path}"}, query, path, endpoint)

    def _html(self, status, template, context, query, path="", endpoint=DEFAULT_ENDPOINT):
        def qs(**overrides):
            """The current query string with ``overrides`` (``None`` removes a key)."""
            merged = {k: v for k, v in {**query, **overrides}.items() if v not in (None, "")}
            return "?" + urlencode(merged) if merged else ""

        html = self.environment.get_template(template).render(
            query=query, since=query.get("since") or "1h", path=path or "/", qs=qs, store=self.api.store.describe(),
            endpoint=endpoint,
            section="/" + (path or "/").strip("/").split("/")[0], **context)
        # "replace": a lone surrogate stored by an older collector shows as "?", not as a 500.
        return status, "text/html; charset=utf-8", html.encode("utf-8", "replace")

    # -- pages ---------------------------------------------------------------------------

    def services(self, query):
        return "services.html", {
            "services": self.api.get("/api/services", query)["services"],
            "routes": self.api.get("/api/routes", query)["routes"],
        }

    def traces(self, query):
        return "traces.html", {"traces": self.api.get("/api/traces", query)["traces"], "services": self.service_names()}

    def trace(self, query, trace_id):
        trace = self.api.handle_or_none(f"/api/traces/{trace_id}", query)
        if trace is None:
            return "trace.html", None
        profile = self.api.get("/api/profile", {"trace_id": trace_id})
        rows = waterfall(trace)
        mark_self_time_and_critical_path(rows, trace)
        return "trace.html", {"trace": trace, "rows": rows, "flame": flame_graph(profile)}

    def profile(self, query):
        """A route's requests' profiles over the window (``route``, ``service``), or a
        service's process-wide ones (``service``)."""
        profile = self.api.get("/api/profile", query)
        return "profile.html", {"profile": profile, "flame": flame_graph(profile)}

    def service_names(self):
        """The services a filter offers: those seen in the last 30 days."""
        return self.api.store.service_names(time.time_ns() - SERVICE_FILTER_DAYS * 86400 * NS)

    def slow_calls(self, query):
        return "slow_calls.html", {"data": self.api.get("/api/slow-calls", query), "services": self.service_names()}

    def errors(self, query):
        return "errors.html", {"groups": self.api.get("/api/errors", query)["groups"],
                               "services": self.service_names()}

    def error(self, query, group_id):
        group = self.api.handle_or_none(f"/api/errors/{group_id}", query)
        return "error_detail.html", group and {"group": group}

    def find_trace(self, query, prefix=None):
        """The trace whose id is or starts with ``prefix`` (or the ``id`` parameter: the box
        in every page's header): opened when one matches, listed when several do."""
        text = re.sub(r"[\s-]", "", prefix or query.get("id") or "").lower()
        if not re.fullmatch(r"[0-9a-f]{1,32}", text):
            raise ApiError(400, f"a trace id is 32 hex digits (or the start of one), not {text[:40]!r}")
        found = self.api.store.trace_ids(text, limit=2)
        if len(found) == 1:
            return REDIRECT, f"/traces/{found[0]}"
        if found:
            return REDIRECT, "/traces?" + urlencode({"trace_id": text, "since": LOOKUP_WINDOW})
        raise ApiError(404, f"no trace id starts with {text}")

    def logs(self, query):
        found = self.api.get("/api/logs", query)
        return "logs.html", {"logs": found["logs"], "services": self.service_names(), "levels": LEVEL_CHOICES,
                             "more_before_ns": found["more_before_ns"]}

    def metrics(self, query):
        """Per service: the runtime metrics in ``CHART_METRICS`` order, then its custom metrics,
        each summed or averaged over its processes (the latest values per process on demand)."""
        services = {}
        for metric in self.api.get("/api/metric-names", query)["metrics"]:
            services.setdefault(metric["service"], {})[metric["name"]] = metric
        charts = {service: {
            "instances": max(m["instances"] for m in names.values()),
            "runtime": [names[name] for name in CHART_METRICS if name in names],
            "custom": [m for name, m in names.items() if not name.startswith(RUNTIME_PREFIXES)],
        } for service, names in services.items()}
        return "metrics.html", {"charts": charts}

    def service(self, query, service):
        """One service over the window: its charts (drawn from ``/api/services/{service}/series``),
        its routes, releases and the latest release against the one before."""
        overview = self.api.get(f"/api/services/{service}", query)
        if not overview["requests"] and not overview["instances"]:
            return "service.html", None
        return "service.html", {"service": service, "summary": overview, "routes": overview["routes"],
                                "releases": overview["releases"], "comparison": overview["comparison"]}


def sparkline(points, width=120, height=22):
    """``[[t, value or None], ...]`` as a small inline SVG: a line through the values, broken
    where there are none, a dot for a value alone; no axes, the highest value on top."""
    from markupsafe import Markup  # jinja2's: imported with the pages, not before

    values = [value for _, value in points if value is not None]
    if not values:
        return Markup("")
    top = max(values) or 1
    step = width / max(1, len(points) - 1)
    pad = 2  # a line at the top or bottom shows whole
    runs, run = [], []
    for index, (_, value) in enumerate(points + [[None, None]]):
        if value is None:
            if run:
                runs.append(run)
            run = []
        else:
            run.append((round(index * step, 1), round(height - pad - (height - 2 * pad) * value / top, 1)))
    # The baseline spans the whole window: where the line stands in it says when.
    shapes = [f'<line class="base" x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}"/>']
    shapes += [f'<polyline points="{" ".join(f"{x},{y}" for x, y in run)}"/>' if len(run) > 1
               else f'<circle cx="{run[0][0]}" cy="{run[0][1]}" r="1.5"/>' for run in runs]
    title = f"p95 over time, highest {format_duration_ms(top)}"
    return Markup(f'<svg class="sparkline" viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img">'
                  f'<title>{title}</title>{"".join(shapes)}</svg>')


#: What a page method returns as its template to send the browser to its context, a path.
REDIRECT = "redirect"
#: The window in which a trace id prefix that several traces share lists them.
LOOKUP_WINDOW = "30d"
LEVEL_CHOICES = ("debug", "info", "warn", "error", "fatal")


def level_name(severity_number):
    """A log record's level as its severity number says (OpenTelemetry's ranges)."""
    if not isinstance(severity_number, int) or severity_number < 1:
        return "-"
    names = ("trace", "debug", "info", "warn", "error", "fatal")
    return names[min(len(names) - 1, (severity_number - 1) // 4)]


#: Frames narrower than this share of the samples are left out of a flame graph.
FLAME_MIN_SHARE = 0.002
FLAME_MAX_DEPTH = 80


def flame_graph(profile):
    """The stacks of an ``/api/profile`` answer merged into a tree and laid out as rows of
    boxes, outermost on top: ``{"samples", "depth", "boxes": [{label, samples, share,
    depth, offset, width (percent), hue}]}``. Boxes are in tree order, children left to
    right by samples, most first."""
    total = sum(stack["samples"] for stack in profile["stacks"])
    tree = {}
    for stack in profile["stacks"]:
        level = tree
        for frame in stack["frames"][:FLAME_MAX_DEPTH]:
            node = level.get(frame)
            if node is None:
                node = level[frame] = [0, {}]
            node[0] += stack["samples"]
            level = node[1]
    boxes = []

    def lay_out(level, depth, offset):
        for label, (samples, children) in sorted(level.items(), key=lambda item: -item[1][0]):
            if samples < total * FLAME_MIN_SHARE:
                continue
            boxes.append({"label": label, "samples": samples, "share": samples / total,
                          "depth": depth, "offset": 100 * offset / total,
                          "width": 100 * samples / total, "hue": _hue(label)})
            lay_out(children, depth + 1, offset)
            offset += samples

    if total:
        lay_out(tree, 0, 0)
    return {"samples": total, "depth": max((box["depth"] for box in boxes), default=-1) + 1,
            "boxes": boxes}


def _hue(label):
    """A warm colour that stays the same for a function from one graph to the next."""
    function = label.partition(" (")[0]
    return 10 + sum(function.encode()) % 45


def waterfall(trace):
    """The trace's spans in tree order, each with its depth and its offset/width in percent.

    Parent links come from senders: a span whose parent is missing starts a tree of its
    own, and so does the first span of a cycle (a span its own ancestor), so that every
    span is shown once. Walked with a stack, not recursion: a trace may nest deeper than
    Python's recursion limit.
    """
    spans = trace["spans"]
    ids = {span["span_id"] for span in spans}
    children = {}
    for span in spans:
        parent = span["parent_span_id"]
        children.setdefault(parent if parent in ids and parent != span["span_id"] else None, []).append(span)
    start_ns = trace["start_ns"]
    total_ns = max(1, int(trace["duration_ms"] * 1e6))
    rows, shown = [], set()
    for root in [*children.get(None, ()), *spans]:
        stack = [(root, 0)]
        while stack:
            span, depth = stack.pop()
            if id(span) in shown:
                continue
            shown.add(id(span))
            rows.append({
                "span": span, "depth": depth,
                "offset": 100 * (span["start_ns"] - start_ns) / total_ns,
                "width": max(0.2, 100 * span["duration_ns"] / total_ns),
            })
            stack += [(child, depth + 1) for child in reversed(children.get(span["span_id"], ()))]
    return rows


def mark_self_time_and_critical_path(rows, trace):
    """Add to each waterfall row its span's self time (``self_ms``: its duration less the
    time its children ran, overlaps counted once) and its share of the critical path
    (``critical``: ``[offset, width]`` percents of the trace where this span, not a child,
    was what the request waited on).

    The critical path is walked back from the end, as Jaeger does: from a span's end, the
    child that finished last before the cursor is on it, the cursor moves to that child's
    start, and so on; the time no child covers is the span's own. With a stack, not
    recursion, over the tree the rows show (their depths).
    """
    children, roots, open_rows = [[] for _ in rows], [], []
    for index, row in enumerate(rows):
        while open_rows and rows[open_rows[-1]]["depth"] >= row["depth"]:
            open_rows.pop()
        (children[open_rows[-1]] if open_rows else roots).append(index)
        open_rows.append(index)
    bounds = [(row["span"]["start_ns"], row["span"]["start_ns"] + row["span"]["duration_ns"]) for row in rows]
    for index, row in enumerate(rows):
        (begin, end), below = bounds[index], [bounds[child] for child in children[index]]
        row["self_ms"] = (end - begin - _covered((begin, end), below)) / 1e6
        row["critical"] = []
    # The trees' roots under one span of the whole trace: the last to finish leads the path.
    start_ns = trace["start_ns"]
    bounds.append((start_ns, max((end for _, end in bounds), default=start_ns)))
    children.append(roots)
    segments = _critical_segments(bounds, children, len(rows))
    total_ns = max(1, int(trace["duration_ms"] * 1e6))
    for index, begin, end in segments:
        if index < len(rows) and end > begin:
            rows[index]["critical"].append([100 * (begin - start_ns) / total_ns,
                                            max(0.2, 100 * (end - begin) / total_ns)])
    return rows


def _covered(span, intervals):
    """Nanoseconds of ``span`` (``(start, end)``) that the ``intervals`` cover, overlaps once."""
    covered, reached = 0, span[0]
    for begin, end in sorted(intervals):
        begin, end = max(begin, reached), min(end, span[1])
        if end > begin:
            covered += end - begin
            reached = end
    return covered


def _critical_segments(bounds, children, top):
    """``[(index, begin_ns, end_ns)]``: the stretches of the critical path below ``top`` and
    the span each belongs to."""
    segments = []
    by_end = [sorted(kids, key=lambda c: -bounds[c][1]) for kids in children]
    stack = [[top, bounds[top][1], 0]]  # span, cursor (walking back), next child to look at
    while stack:
        frame = stack[-1]
        index, cursor, position = frame
        begin = bounds[index][0]
        order = by_end[index]
        while position < len(order):
            child = order[position]
            position += 1
            child_end = min(bounds[child][1], cursor)
            if bounds[child][0] >= cursor or child_end <= begin:
                continue  # starts after the cursor, or ends before this span began
            if child_end < cursor:
                segments.append((index, child_end, cursor))
            frame[1], frame[2] = max(bounds[child][0], begin), position
            stack.append([child, child_end, 0])
            break
        else:
            if cursor > begin:
                segments.append((index, begin, cursor))
            stack.pop()
    return segments
