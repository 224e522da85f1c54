"""The JSON API under ``/api/``: query parameters in, the store's answers out.

The web UI renders these same payloads and ``spyglass report`` fetches them over HTTP,
so the three always agree. ``openapi.py`` describes every endpoint.
"""
import json
import math
import re
import time

from .durations import parse_duration, parse_instant
from .error_event import clean_event
from .error_states import STATES
from .model import INT64_MAX
from .openapi import openapi_document
from .rollup import MINUTE_NS, aligned_buckets
from .series import ServiceSeries
from .search import LEVELS

NS = 1_000_000_000
DEFAULT_WINDOW = "1h"
#: The latest instant a store's int64 of nanoseconds holds, in seconds.
LAST_INSTANT = INT64_MAX // NS
MAX_LIMIT = 1000


class ApiError(Exception):
    def __init__(self, status, reason):
        super().__init__(reason)
        self.status, self.reason = status, reason


def _window(query):
    """``(since_ns, until_ns)`` from ``start``/``end`` instants or a ``since`` duration.

    A window reaching back before 1970 starts there; an instant outside 1970 to 2262 (what
    an int64 of nanoseconds holds) is refused.
    """
    until = _instant(query, "end") if query.get("end") else None
    if query.get("start"):
        since = _instant(query, "start")
    else:
        try:
            length = parse_duration(query.get("since") or DEFAULT_WINDOW)
        except ValueError as exc:
            raise ApiError(400, f"since: {exc}") from None
        if not math.isfinite(length):
            raise ApiError(400, f"since: {query['since'][:40]!r} is not a finite duration")
        since = max(0.0, (until if until is not None else time.time()) - length)
    return int(since * NS), (int(until * NS) if until is not None else None)


def _instant(query, name):
    try:
        seconds = parse_instant(query[name])
    except (ValueError, OverflowError, OSError) as exc:
        raise ApiError(400, f"{name}: {exc}") from None
    if not 0 <= seconds <= LAST_INSTANT:  # NaN fails this too
        raise ApiError(400, f"{name}: {query[name][:40]!r} is not between 1970 and 2262")
    return seconds


def _number(query, name, default, kind=float, most=float(INT64_MAX)):
    """A non-negative finite number of ``kind`` at most ``most``, or ``default``."""
    text = query.get(name) or default
    try:
        value = kind(text)
    except (ValueError, OverflowError):
        raise ApiError(400, f"{name}: not {'an integer' if kind is int else 'a number'}: {str(text)[:40]!r}") from None
    if not 0 <= value <= most:  # NaN fails this too
        raise ApiError(400, f"{name}: {str(text)[:40]!r} is not a number from 0 to {most:g}")
    return value


def _limit(query, default, most=MAX_LIMIT):
    """``limit``: a count of items, at most ``most`` (more is taken as the most)."""
    return min(_number(query, "limit", default, int, most=math.inf), most)


def _no_nul(query):
    """Refuse NUL characters anywhere: no store takes them in a text parameter."""
    for name, value in query.items():
        if "\0" in value or "\0" in name:
            raise ApiError(400, f"{name[:40]!r}: NUL characters are not accepted")


def _flag(query, name):
    return str(query.get(name, "")).lower() in ("1", "true", "yes", "on")


def _status(query):
    status = (query.get("status") or "").strip().lower()
    if status and not re.fullmatch(r"error|[1-5]xx|[1-5][0-9][0-9]", status):
        raise ApiError(400, f"status: use a code (404), a class (5xx) or 'error', not {status[:40]!r}")
    return status or None


class Api:
    """Routes ``/api/...`` paths to the store's queries."""

    def __init__(self, store):
        self.store = store
        self.series = ServiceSeries(store)
        self._routes = [
            (re.compile(r"/api/?"), self.index),
            (re.compile(r"/api/openapi\.json"), lambda query: openapi_document()),
            (re.compile(r"/api/health"), self.health),
            (re.compile(r"/api/services"), self.services),
            (re.compile(r"/api/routes"), self.routes),
            (re.compile(r"/api/traces"), self.traces),
            (re.compile(r"/api/traces/(?P<trace_id>[0-9a-fA-F]{32})"), self.trace),
            (re.compile(r"/api/slow-calls"), self.slow_calls),
            (re.compile(r"/api/profile"), self.profile),
            (re.compile(r"/api/errors"), self.error_groups),
            (re.compile(r"/api/errors/(?P<group_id>[0-9]+)"), self.error_group),
            (re.compile(r"/api/metrics"), self.latest_metrics),
            (re.compile(r"/api/metrics/(?P<name>[^/]+)"), self.metric_series),
            # A service over time (series.py); names may hold any character but NUL.
            (re.compile(r"/api/services/(?P<service>[^\0]+)/series"), self.service_series),
            (re.compile(r"/api/services/(?P<service>[^\0]+)/metrics/(?P<name>[^/]+)"), self.service_metric),
            (re.compile(r"/api/services/(?P<service>[^\0]+)"), self.service),  # after the longer ones
            (re.compile(r"/api/metric-names"), self.metric_names),
            (re.compile(r"/api/logs"), self.logs),
        ]

    def handle(self, path, query):
        """``(status, payload)`` for a GET of ``path`` with ``query`` (a dict of strings)."""
        _no_nul({**query, "path": path})
        for pattern, endpoint in self._routes:
            match = pattern.fullmatch(path)
            if match:
                payload = endpoint(query, **match.groupdict())
                if payload is None:
                    raise ApiError(404, f"nothing at {path}")
                return 200, payload
        raise ApiError(404, f"no API endpoint at {path}: see /api/openapi.json")

    def get(self, path, query=None):
        """The payload at ``path``, for in-process callers (the UI)."""
        return self.handle(path, query or {})[1]

    def handle_or_none(self, path, query=None):
        """Like ``get``, but ``None`` where there is nothing at ``path``."""
        try:
            return self.get(path, query)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    @staticmethod
    def encode(payload):
        """``payload`` as JSON: always valid JSON, NaN and the infinities (from data stored
        before the collector coerced them) as ``null``."""
        try:
            return json.dumps(payload, separators=(",", ":"), default=str, allow_nan=False).encode()
        except ValueError:
            return json.dumps(_finite(payload), separators=(",", ":"), default=str).encode()

    # -- endpoints -----------------------------------------------------------------------

    def index(self, query):
        return {"openapi": "/api/openapi.json",
                "endpoints": sorted(path for path in openapi_document()["paths"])}

    def health(self, query):
        store = self.store.describe()
        # Summaries read the rollup before this, the spans after (rollup.py): how far behind it is.
        return {"status": "ok", "schema_version": store["schema_version"], "store": store,
                "rolled_up_until_ns": self.store.rollup.rolled_until()}

    def services(self, query):
        since_ns, _ = _window(query)
        return {"since_ns": since_ns, "services": self.store.services(since_ns)}

    def routes(self, query):
        since_ns, _ = _window(query)
        return {"since_ns": since_ns, "routes": self.store.routes(since_ns, query.get("service") or None)}

    def traces(self, query):
        since_ns, until_ns = _window(_until_as_end(query))
        traces = self.store.traces(
            since_ns, until_ns, service=query.get("service") or None, route=query.get("route") or None,
            status=_status(query),
            min_duration_ns=int(_number(query, "min_duration_ms", 0, most=INT64_MAX // 10**6) * 1e6),
            errors_only=_flag(query, "errors"), limit=_limit(query, 100), **_trace_search(query))
        return {"since_ns": since_ns, "until_ns": until_ns, "traces": traces}

    def trace(self, query, trace_id):
        return self.store.trace(trace_id)

    def profile(self, query):
        """A flame graph's stacks: ``trace_id``, else ``route`` (with ``service``), else
        ``service`` (its process-wide profiles), over the window."""
        since_ns, _ = _window(query)
        trace_id = query.get("trace_id") or None
        if trace_id and not re.fullmatch(r"[0-9a-fA-F]{32}", trace_id):
            raise ApiError(400, f"trace_id: 32 hex digits, not {trace_id[:40]!r}")
        if not (trace_id or query.get("route") or query.get("service")):
            raise ApiError(400, "profile: give trace_id, route or service")
        profile = self.store.profile(trace_id=trace_id, service=query.get("service") or None,
                                     route=query.get("route") or None, since_ns=since_ns,
                                     limit=_limit(query, 500, most=5000))
        return {"since_ns": since_ns, **profile}

    def slow_calls(self, query):
        since_ns, until_ns = _window(query)
        sort = query.get("sort") or "total"
        if sort not in ("total", "count", "p95"):
            raise ApiError(400, f"sort: use total, count or p95, not {sort!r}")
        slow_only = not _flag(query, "all")
        calls = self.store.slow_calls(since_ns, service=query.get("service") or None, sort=sort,
                                      limit=_limit(query, 50), slow_only=slow_only)
        until_ns = until_ns or time.time_ns()
        step_ns = _step(since_ns, until_ns, SPARKLINE_POINTS)
        # Buckets of whole minutes are whole blocks of the call rollup, read from it.
        origin_ns = aligned_buckets(since_ns, until_ns, step_ns)[0] if step_ns % MINUTE_NS == 0 else since_ns
        series = self.store.slow_call_p95_series(origin_ns, until_ns, step_ns,
                                                 [(call["service"], call["key"]) for call in calls], slow_only)
        for call in calls:
            call["p95_series"] = series.get((call["service"], call["key"]), [])
        return {"since_ns": since_ns, "sort": sort, "slow_only": slow_only, "step_ns": step_ns, "calls": calls}

    def error_groups(self, query):
        since_ns, _ = _window(query)
        state = query.get("state") or ""
        if state not in ("", "all", *STATES):
            raise ApiError(400, f"state: use open, resolved, ignored or all, not {state[:40]!r}")
        states = {"": ("open", "resolved"), "all": None}.get(state, (state,))
        groups = self.store.error_groups(since_ns, service=query.get("service") or None,
                                         limit=_limit(query, 100), states=states)
        return {"since_ns": since_ns, "groups": groups}

    def error_group(self, query, group_id):
        group_id = _group_id(group_id)
        since_ns, until_ns = _window(query)
        group = self.store.error_group(group_id)
        if group is None:
            return None
        latest = group.get("latest_event")
        if latest:  # cleaned on the way in; again for events stored before that
            latest["event"] = clean_event(latest.get("event"))
        until_ns = until_ns or time.time_ns()
        activity = self.store.error_group_activity(group_id, since_ns, until_ns,
                                                   _step(since_ns, until_ns, FREQUENCY_POINTS))
        return {**group, "since_ns": since_ns, **activity}

    # -- changes (POST) ------------------------------------------------------------------

    def handle_post(self, path, content_type, body):
        """``(status, payload)`` for a POST of ``body`` (bytes) to ``path``."""
        match = re.fullmatch(r"/api/errors/(?P<group_id>[0-9]+)", path)
        if match is None:
            if any(pattern.fullmatch(path) for pattern, _ in self._routes):
                raise ApiError(405, f"{path} takes GET only")
            raise ApiError(404, f"no API endpoint at {path}: see /api/openapi.json")
        group_id = _group_id(match["group_id"])
        state = _state_change(content_type, body)
        group = self.store.set_error_state(group_id, state)
        if group is None:
            raise ApiError(404, f"no error group {group_id}")
        return 200, group

    def latest_metrics(self, query):
        since_ns, _ = _window(query)
        return {"since_ns": since_ns, "metrics": self.store.latest_metrics(since_ns, query.get("service") or None)}

    def metric_series(self, query, name):
        since_ns, _ = _window(query)
        series = self.store.metric_series(name, since_ns, service=query.get("service") or None,
                                          instance=query.get("instance") or None)
        return {"since_ns": since_ns, "name": name, "series": series}

    def logs(self, query):
        since_ns, until_ns = _window(_until_as_end(query))
        limit = _limit(query, 100)
        logs = self.store.logs(since_ns, until_ns, text=query.get("q") or None, level=_level(query),
                               service=query.get("service") or None, logger=query.get("logger") or None,
                               trace_id=_hex_prefix(query, "trace_id"), limit=limit)
        searched = query.get("q") or query.get("logger")
        # A search that found fewer than asked for read a bounded number of records: where it stopped.
        edge = self.store.log_search_edge(since_ns, until_ns) if searched and len(logs) < limit else None
        return {"since_ns": since_ns, "until_ns": until_ns, "logs": logs, "more_before_ns": edge}

    # -- a service over time (series.py) -------------------------------------------------

    def service_series(self, query, service):
        """Requests over the window in buckets of ``step``, of one ``route`` (and ``method``)
        or all, and the service's releases (for the charts' markers)."""
        since_ns, until_ns = _closed_window(query)
        series = self.series.requests(service, since_ns, until_ns, step_s=_step_param(query),
                                      route=query.get("route") or None, method=query.get("method") or None)
        releases = self.series.releases(service, since_ns, until_ns)
        return {"service": service, "since_ns": since_ns, "until_ns": until_ns, **series,
                "releases": [_release(release) for release in releases]}

    def service(self, query, service):
        """One service over the window: requests, errors, percentiles, processes; its releases
        and the latest compared with the one before."""
        since_ns, until_ns = _closed_window(query)
        releases = self.series.releases(service, since_ns, until_ns)
        return {"service": service, "since_ns": since_ns, "until_ns": until_ns,
                **self.series.summary(service, since_ns, until_ns),
                "routes": self.series.routes(service, since_ns, until_ns),
                "releases": [_release(release) for release in releases],
                "comparison": self.series.compare(service, since_ns, until_ns, releases)}

    def metric_names(self, query):
        since_ns, until_ns = _closed_window(query)
        return {"since_ns": since_ns, "until_ns": until_ns,
                "metrics": self.series.metric_names(since_ns, until_ns, query.get("service") or None)}

    def service_metric(self, query, service, name):
        since_ns, until_ns = _closed_window(query)
        return {"since_ns": since_ns, "until_ns": until_ns,
                **self.series.metric(name, service, since_ns, until_ns, step_s=_step_param(query))}


def _closed_window(query):
    """``_window`` with its end: now where not given."""
    since_ns, until_ns = _window(query)
    return since_ns, time.time_ns() if until_ns is None else until_ns


def _step_param(query):
    """``step``: a bucket's length in seconds (a duration: 60, 30s, 5m), or ``None``."""
    if not query.get("step"):
        return None
    try:
        step = parse_duration(query["step"])
    except ValueError as exc:
        raise ApiError(400, f"step: {exc}") from None
    return step or None  # 0: the default


def _release(release):
    """A release as the API shows it: without its resource keys (internal)."""
    return {key: value for key, value in release.items() if key not in ("resource_keys", "first_seen_ns")}


# -- search parameters (trace search, log search) -------------------------------------------

MAX_ATTRIBUTE_KEY, MAX_ATTRIBUTE_VALUE = 256, 1000


def _until_as_end(query):
    """``until``: the search routes' name for the window's ``end`` (taken over ``end``)."""
    return {**query, "end": query["until"]} if query.get("until") else query


def _trace_search(query):
    """What ``/api/traces`` searches by beyond the list's own filters (``search.SearchQueries``)."""
    most_ms = INT64_MAX // 10**6
    search = {"attribute": _attribute(query), "trace_id": _hex_prefix(query, "trace_id")}
    if query.get("max_duration_ms"):  # below min_duration_ms, nothing matches
        search["max_duration_ns"] = int(_number(query, "max_duration_ms", 0, most=most_ms) * 1e6)
    return search


def _attribute(query):
    """``attribute``: ``key=value`` (the first ``=`` splits) as ``(key, value)``."""
    text = query.get("attribute")
    if not text:
        return None
    key, equals, value = text.partition("=")
    key = key.strip()
    if not equals or not key:
        raise ApiError(400, f"attribute: use key=value, e.g. db.system=postgresql, not {text[:40]!r}")
    if len(key) > MAX_ATTRIBUTE_KEY or len(value) > MAX_ATTRIBUTE_VALUE:
        raise ApiError(400, f"attribute: a key of at most {MAX_ATTRIBUTE_KEY} characters and a value "
                            f"of at most {MAX_ATTRIBUTE_VALUE}")
    return key, value.strip()


def _hex_prefix(query, name):
    """A trace id or the start of one: 1 to 32 hex digits, lowercased."""
    text = (query.get(name) or "").strip().lower()
    if text and not re.fullmatch(r"[0-9a-f]{1,32}", text):
        raise ApiError(400, f"{name}: a trace id or its start, 1 to 32 hex digits, not {text[:40]!r}")
    return text or None


def _level(query):
    """``level``: a name (``warn``) or a severity number 1 to 24, as the least severity."""
    text = (query.get("level") or "").strip().lower()
    if not text:
        return None
    if text in LEVELS:
        return LEVELS[text]
    if re.fullmatch(r"[0-9]{1,2}", text) and 1 <= int(text) <= 24:
        return int(text)
    raise ApiError(400, f"level: use trace, debug, info, warn, error, fatal or a severity number 1 to 24, "
                        f"not {text[:40]!r}")


#: Buckets of an error group's frequency chart, and points of a slow call's sparkline.
FREQUENCY_POINTS, SPARKLINE_POINTS = 60, 24
#: The largest body a POST to the API may have: a state change is a few bytes.
MAX_POST_BYTES = 4096


#: Bucket lengths a chart's bars read well at, in seconds.
NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
              2 * 86400, 7 * 86400)


def _step(since_ns, until_ns, points):
    """A bucket length (ns) that cuts the window into at most about ``points`` buckets: the
    shortest round one (15 s, 5 min, 1 h, ...) that does, in whole days past a week."""
    seconds = round((until_ns - since_ns) / NS) / points
    step = next((nice for nice in NICE_STEPS if nice >= seconds), None)
    return (step or math.ceil(seconds / 86400) * 86400) * NS


def _group_id(text):
    if len(text) > 19 or int(text) > INT64_MAX:
        raise ApiError(400, f"group_id: {text[:40]} is larger than any id")
    return int(text)


def _state_change(content_type, body):
    """The state a POST body asks for: ``{"state": "open" | "resolved" | "ignored"}``.

    JSON only: a page on another site can make a browser send a form, not JSON
    (that needs the site's consent, by CORS), so it cannot change states behind a user's back.
    """
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(415, f"send JSON (Content-Type: application/json), not {media_type[:40]!r}")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"the body is not JSON: {str(exc)[:80]}") from None
    if not isinstance(document, dict) or set(document) != {"state"}:
        raise ApiError(400, 'send {"state": "open" | "resolved" | "ignored"} and nothing else')
    state = document["state"]
    if state not in STATES:  # also refuses what is not a string
        raise ApiError(400, f"state: use open, resolved or ignored, not {str(state)[:40]!r}")
    return state


def _finite(value):
    """``value`` with every NaN and infinity replaced by ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
