"""The read side of every store: one set of SQL queries that SQLite and PostgreSQL both run.

Percentiles, rankings and route grouping happen in the database, not in Python: each
query groups and ranks the rows it reads, and only the answer crosses the connection.
Requests (services, routes) are counted from the per-minute rollup (``rollup``), whose
duration buckets say where each percentile lies: one seek in an index in duration order
reads that bucket only; slow calls are counted from the call rollup the same way.
Sorting the window's rows with window functions took seconds with a million spans.
The SQL keeps to what both dialects share: window functions, ``count(*) FILTER``,
``CASE``, ``?`` placeholders (the PostgreSQL store rewrites them to ``%s``), and boolean
columns used as predicates (``WHERE is_root``: an integer in SQLite, a boolean in
PostgreSQL). A backend mixes ``Queries`` in and provides ``_rows(sql, parameters)``,
returning a list of dicts, ``BUCKET_SQL`` (``rollup.bucket_of`` in its dialect) and the
rollup's (``rollup.Rollup``) hooks.

Percentiles are nearest-rank: the p-th percentile of n values is the one of rank
``ceil(n * p / 100)`` in ascending order, which is ``(n * p + 99) / 100`` in integer
arithmetic, in both dialects.
"""
import json
import re

from .error_states import group_state

from .rollup import CALLS
from .search import SearchQueries

NS = 1_000_000_000
INT64_MAX = (1 << 63) - 1
PERCENTILES = (50, 95, 99)


def _rank_of(percent, count="n"):
    return f"({count} * {percent} + 99) / 100"


def _percentile_column(percent, rank="rank_asc"):
    """``pNN_ns``: the duration at the nearest rank of ``percent`` in a ranked group."""
    return f"max(CASE WHEN {rank} = {_rank_of(percent)} THEN duration_ns END) AS p{percent}_ns"


SERVICE_INSTANCES = """
    SELECT service, count(*) AS instances, max(last_seen_ns) AS last_seen_ns FROM resources
    WHERE last_seen_ns >= ? GROUP BY service
"""
#: A group's slowest call since ``?``, from the slowest it can be: a seek in the calls-by-duration index.
SLOWEST_CALL = """
    SELECT call_label AS label, call_category AS category, trace_id AS slowest_trace_id,
           span_id AS slowest_span_id
    FROM spans WHERE {where} AND duration_ns <= ? ORDER BY duration_ns DESC LIMIT 1
"""
SLOW_CALL_ORDER = {"total": "total_ns", "count": "count", "p95": "p95_ns"}
LATEST_METRICS = """
    SELECT service, instance, name, unit, kind, monotonic, attributes, value, count, sum, time_ns
    FROM (SELECT service, instance, name, unit, kind, monotonic, attributes, value, count, sum, time_ns,
                 row_number() OVER (PARTITION BY service, instance, name, attributes
                                    ORDER BY time_ns DESC) AS recency
          FROM metric_points WHERE time_ns >= ? {service_clause}) AS latest
    WHERE recency = 1 ORDER BY service, instance, name, attributes
"""
TRACES = """
    SELECT trace_id, span_id, service, name, route, http_method, http_status, start_ns, duration_ns,
           is_error, user_id,
           (SELECT count(*) FROM spans AS member WHERE member.trace_id = spans.trace_id) AS span_count
    FROM spans WHERE {clauses} ORDER BY start_ns DESC LIMIT ?
"""
ERROR_GROUPS = """
    SELECT g.*, (SELECT count(DISTINCT user_id) FROM error_events WHERE group_id = g.id) AS users,
           (SELECT count(*) FROM error_events WHERE group_id = g.id AND time_ns >= ?) AS recent
    FROM error_groups AS g WHERE g.last_seen_ns >= ? {service_clause} {state_clause}
    ORDER BY g.last_seen_ns DESC, g.id DESC LIMIT ?
"""


def _ms(ns):
    return None if ns is None else float(ns) / 1e6


def _latency(row):
    return {f"p{p}_ms": _ms(row[f"p{p}_ns"]) for p in PERCENTILES} | {"max_ms": _ms(row["max_ns"])}


def _json(text):
    return json.loads(text) if text else None


NO_ROUTE = " (no route)"


def route_name(method, route):
    """How a route is shown: ``GET /users/{id}``; a span name that already starts with its
    method (``GET /users/{id}`` as a name fallback) is not prefixed twice. A request no
    route matched has no ``http.route`` and is named by its method alone (``GET``, stored
    as its route): ``GET (no route)``, which the route filters take for those requests."""
    route = "" if route is None else str(route)
    if method and route in ("", method):
        return method + NO_ROUTE
    if method and not route.startswith(f"{method} "):
        return f"{method} {route}"
    return route or "-"


def _unrouted_clause(route, parameters):
    """SQL for the route filter ``GET (no route)``: exactly the requests of that method no
    route matched (stored under their name, the method); None for any other filter."""
    if not (isinstance(route, str) and route.endswith(NO_ROUTE)):
        return None
    method = route[:-len(NO_ROUTE)]
    parameters += [method, method]
    return "(http_method = ? AND route = ?)"


def _route_and_name(row):
    """A routes row's ``route`` (what the route filters take for its requests: the label
    for those no route matched) and ``name`` (how it is shown)."""
    name = route_name(row["http_method"], row["route"])
    return {"route": name if name.endswith(NO_ROUTE) else row["route"], "name": name}


def _service_clause(service, parameters, column="service"):
    if not service:
        return ""
    parameters.append(service)
    return f"AND {column} = ?"


def _equal(column, value, parameters):
    """``column = ?``, or ``column IS NULL`` for ``None`` (which ``=`` matches nothing)."""
    if value is None:
        return f"{column} IS NULL"
    parameters.append(value)
    return f"{column} = ?"


def _group_where(base, since_ns, parameters, **columns):
    """``base`` and ``start_ns >= ?`` and each of ``columns`` equal to its value."""
    clauses = [base, *(_equal(column, value, parameters) for column, value in columns.items()), "start_ns >= ?"]
    parameters.append(since_ns)
    return " AND ".join(clauses)


def status_clause(status, parameters):
    """SQL for a status filter: ``5xx`` (a class), ``404`` (a code) or ``error``."""
    status = str(status).strip().lower()
    if status == "error":
        return "is_error"
    if len(status) == 3 and status[0].isdigit() and status[1:] == "xx":
        parameters += [int(status[0]) * 100, int(status[0]) * 100 + 99]
        return "http_status BETWEEN ? AND ?"
    parameters.append(int(status))
    return "http_status = ?"


#: A route template's placeholders, in either form: ``{id}`` (OpenAPI, Starlette, FastAPI) or
#: ``<int:id>`` (Flask, Werkzeug, Django's ``path()``).
_PLACEHOLDER = re.compile(r"\{[^{}/]*\}|<[^<>/]*>")
_LIKE = "lower({column}) LIKE ? ESCAPE '\\'"


def _like_escaped(text):
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def route_clause(route, parameters):
    """SQL for a route filter: a substring of a request's route (or root span name), case
    aside, whose placeholders match placeholders of either form: ``/users/{id}`` finds
    ``/users/<int:id>`` and ``GET /users/{user_id}/posts``, ``users`` finds both."""
    unrouted = _unrouted_clause(route, parameters)
    if unrouted:
        return unrouted
    parts = [_like_escaped(part) for part in _PLACEHOLDER.split(str(route).lower())]
    if len(parts) == 1:
        patterns = [f"%{parts[0]}%"]
    else:
        patterns = [f"%{f'{opening}%{closing}'.join(parts)}%" for opening, closing in ("{}", "<>")]
    clauses = []
    for column in ("route", "name"):
        for pattern in patterns:
            clauses.append(_LIKE.format(column=column))
            parameters.append(pattern)
    return f"({' OR '.join(clauses)})"


def _in_clause(column, values, parameters):
    """``AND column IN (...)`` for ``values``; nothing for ``None`` (any value)."""
    if values is None:
        return ""
    parameters += list(values)
    return f"AND {column} IN ({', '.join('?' * len(values))})" if values else "AND 1 = 0"


ERROR_FREQUENCY = """
    SELECT (time_ns - ?) / ? AS bucket, count(*) AS events FROM error_events
    WHERE group_id = ? AND time_ns >= ? AND time_ns < ? GROUP BY bucket
"""
#: What an error group's events are broken down by, and the column that holds it.
ERROR_BREAKDOWNS = {"route": "route", "release": "release", "user": "user_id"}
ERROR_BREAKDOWN = """
    SELECT {column} AS value, count(*) AS events FROM error_events
    WHERE group_id = ? AND time_ns >= ? AND time_ns < ?
    GROUP BY {column} ORDER BY events DESC, {column} IS NULL, {column} LIMIT ?
"""
#: The most buckets a series over time may have (the API asks for tens).
MAX_BUCKETS = 10_000


def _buckets(since_ns, until_ns, step_ns):
    """The start of each bucket of ``step_ns`` from ``since_ns`` to ``until_ns``, in seconds."""
    count = max(1, -(-(until_ns - since_ns) // step_ns))
    if count > MAX_BUCKETS:
        raise ValueError(f"{count} buckets: at most {MAX_BUCKETS}, make the step longer")
    return [(since_ns + index * step_ns) / NS for index in range(count)]


class Queries(SearchQueries):
    """The ``Store`` read methods, over ``self._rows(sql, parameters) -> [dict]``."""

    def _rows(self, sql, parameters=()):
        raise NotImplementedError

    def request_stats(self, since_ns, until_ns=None, by=(), **columns):
        """``{key: row}``: the requests from ``since_ns`` to ``until_ns`` (open: ``None``) whose
        ``columns`` have the given values, grouped by the columns ``by`` (read from the
        per-minute rollup, ``rollup``): requests, errors, total, longest and exact p50/p95/p99."""
        stats = {}
        for key, group in self.rollup.groups(since_ns, until_ns, by, **columns).items():
            parameters = [] if until_ns is None else [until_ns]
            where = _group_where("is_root" if until_ns is None else "is_root AND start_ns < ?", since_ns, parameters,
                                 **{**columns, **dict(zip(by, key))})
            stats[key] = {"requests": group.requests, "errors": group.errors, "total_ns": group.total_ns,
                          "max_ns": group.max_ns, **dict(zip(by, key)),
                          **self.rollup.exact_percentiles(group, where, parameters, PERCENTILES)}
        return stats

    def services(self, since_ns):
        stats = {key[0]: row for key, row in self.request_stats(since_ns, by=("service",)).items()}
        seen = {row["service"]: row for row in self._rows(SERVICE_INSTANCES, [since_ns])}
        result = []
        for service in sorted(set(stats) | set(seen)):
            row = stats.get(service) or {"requests": 0, "errors": 0, "max_ns": None,
                                         **{f"p{p}_ns": None for p in PERCENTILES}}
            requests = row["requests"]
            result.append({
                "service": service, "requests": requests, "errors": row["errors"],
                "error_rate": row["errors"] / requests if requests else 0.0, **_latency(row),
                "instances": seen[service]["instances"] if service in seen else 0,
                "last_seen_ns": seen[service]["last_seen_ns"] if service in seen else None,
            })
        return result

    def service_names(self, since_ns):
        """The services a process of which reported since ``since_ns``, by name: what a
        filter offers, without ranking any request."""
        return [row["service"] for row in self._rows(
            "SELECT DISTINCT service FROM resources WHERE last_seen_ns >= ? ORDER BY service", [since_ns])]

    def routes(self, since_ns, service=None):
        rows = list(self.request_stats(since_ns, by=("service", "http_method", "route"),
                                       **({"service": service} if service else {})).values())
        rows.sort(key=lambda row: (-(row["p95_ns"] or 0), -row["requests"], row["service"], row["route"] or ""))
        return [{
            "service": row["service"], "method": row["http_method"], **_route_and_name(row),
            "requests": row["requests"], "errors": row["errors"], "error_rate": row["errors"] / row["requests"],
            "total_ms": _ms(row["total_ns"]), **_latency(row),
        } for row in rows]

    def traces(self, since_ns, until_ns=None, service=None, route=None, status=None,
               min_duration_ns=0, errors_only=False, limit=100, **search):
        clauses, parameters = ["is_root", "start_ns >= ?"], [since_ns]
        if until_ns is not None:
            clauses.append("start_ns <= ?")
            parameters.append(until_ns)
        if service:
            clauses.append("service = ?")
            parameters.append(service)
        if route:
            clauses.append(route_clause(route, parameters))
        if status:
            clauses.append(status_clause(status, parameters))
        if min_duration_ns:
            clauses.append("duration_ns >= ?")
            parameters.append(int(min_duration_ns))
        if errors_only:
            clauses.append("is_error")
        self.search_clauses(clauses, parameters, since_ns, until_ns, **search)
        parameters.append(int(limit))
        rows = self._rows(TRACES.format(clauses=" AND ".join(clauses)), parameters)
        return [{**row, "duration_ms": row["duration_ns"] / 1e6, "is_error": bool(row["is_error"])}
                for row in rows]

    def trace(self, trace_id):
        trace_id = trace_id.lower()
        # Ties in start time: the longer span (the parent, usually) first.
        spans = self._rows("SELECT * FROM spans WHERE trace_id = ? ORDER BY start_ns, end_ns DESC, span_id",
                           [trace_id])
        if not spans:
            return None
        resources = {row["key"]: {"service": row["service"], "instance": row["instance"],
                                  "attributes": _json(row["attributes"])}
                     for row in self._rows(
                         "SELECT * FROM resources WHERE key IN (SELECT DISTINCT resource_key FROM spans "
                         "WHERE trace_id = ?)", [trace_id])}
        logs = [_log(row) for row in self._rows(
            "SELECT * FROM logs WHERE trace_id = ? ORDER BY time_ns", [trace_id])]
        errors = self._rows(
            "SELECT e.id, e.group_id, e.span_id, e.time_ns, g.type, g.message FROM error_events AS e "
            "JOIN error_groups AS g ON g.id = e.group_id WHERE e.trace_id = ? ORDER BY e.time_ns", [trace_id])
        start_ns = min(row["start_ns"] for row in spans)
        end_ns = max(row["end_ns"] for row in spans)
        return {
            "trace_id": trace_id, "start_ns": start_ns, "duration_ms": (end_ns - start_ns) / 1e6,
            "services": sorted({row["service"] for row in spans}),
            "spans": [_span(row) for row in spans], "resources": resources, "logs": logs, "errors": errors,
        }

    def profile(self, trace_id=None, service=None, route=None, since_ns=0, limit=500):
        """Stacks by samples, most first (at most ``limit``), and the samples in all: of the
        trace ``trace_id``; else of the requests of ``route`` (a route or a root span's name)
        since ``since_ns``; else of ``service``'s process-wide profiles (the samples linked
        to no trace) since ``since_ns``. Each stack is its frames, outermost first."""
        if trace_id:
            where, parameters = "trace_id = ?", [trace_id.lower()]
        elif route:
            parameters = [since_ns]
            exact = _unrouted_clause(route, parameters)
            if exact is None:
                exact = "(route = ? OR name = ?)"
                parameters += [route, route]
            where = ("trace_id IN (SELECT trace_id FROM spans WHERE is_root AND start_ns >= ? "
                     f"AND {exact} {_service_clause(service, parameters)}) "
                     "AND time_ns >= ?")
            parameters.append(since_ns)
        else:
            parameters = [since_ns]
            where = f"trace_id IS NULL AND time_ns >= ? {_service_clause(service, parameters)}"
        rows = self._rows(f"SELECT stack, sum(samples) AS samples, sum(sum(samples)) OVER () AS total "
                          f"FROM profile_samples WHERE {where} GROUP BY stack "
                          f"ORDER BY samples DESC, stack LIMIT ?", [*parameters, int(limit)])
        return {"samples": int(rows[0]["total"]) if rows else 0,
                "stacks": [{"frames": row["stack"].split("\n"), "samples": int(row["samples"])}
                           for row in rows]}

    def slow_calls(self, since_ns, service=None, sort="total", limit=50, slow_only=False):
        """Calls since ``since_ns`` per service and call key, from the call rollup
        (``rollup.CALLS``): executions, total, longest, exact p95 (a seek in the calls-by-duration
        index each) and the slowest call; ranked by ``sort``."""
        equal = {**({"service": service} if service else {}), **({"is_slow": True} if slow_only else {})}
        groups = self.rollup.groups(since_ns, by=("service", "call_key"), table=CALLS, **equal)
        calls = []
        for (service_name, key), group in groups.items():
            parameters = []
            where = _group_where("call_key IS NOT NULL", since_ns, parameters, service=service_name,
                                 call_key=key) + (" AND is_slow" if slow_only else "")
            calls.append({"service": service_name, "key": key, "count": group.executions, "total_ns": group.total_ns,
                          "max_ns": group.max_ns, "group": group, "where": where, "parameters": parameters})
        order = SLOW_CALL_ORDER[sort]
        # Ranked by p95: every call's is needed; else only the listed ones'.
        for row in calls if sort == "p95" else ():
            row["p95_ns"] = self._call_p95(row)
        calls.sort(key=lambda row: (-(row[order] or 0), row["service"], row["key"]))
        result = []
        for row in calls[:int(limit)]:
            if "p95_ns" not in row:
                row["p95_ns"] = self._call_p95(row)
            where, parameters = row.pop("where"), row.pop("parameters")
            del row["group"]
            slowest = self._rows(SLOWEST_CALL.format(where=where), [*parameters, row["max_ns"]])
            row.update(slowest[0] if slowest else dict.fromkeys(
                ("label", "category", "slowest_trace_id", "slowest_span_id")))
            total_ms, p95_ms, max_ms = (_ms(row.pop(column)) for column in ("total_ns", "p95_ns", "max_ns"))
            count = row["count"]
            result.append({**row, "total_ms": total_ms, "avg_ms": total_ms / count, "p95_ms": p95_ms, "max_ms": max_ms})
        return result

    def _call_p95(self, row):
        return self.rollup.exact_percentiles(row["group"], row["where"], row["parameters"], [95])["p95_ns"]

    def error_groups(self, since_ns, service=None, limit=100, states=None):
        parameters = [since_ns, since_ns]
        sql = ERROR_GROUPS.format(service_clause=_service_clause(service, parameters, "g.service"),
                                  state_clause=_in_clause("g.state", states, parameters))
        parameters.append(int(limit))
        return [group_state(row) for row in self._rows(sql, parameters)]

    def error_group(self, group_id):
        if not 0 < int(group_id) <= INT64_MAX:  # no such id, and no database takes the number
            return None
        groups = self._rows(
            "SELECT g.*, (SELECT count(DISTINCT user_id) FROM error_events WHERE group_id = g.id) AS users "
            "FROM error_groups AS g WHERE g.id = ?", [int(group_id)])
        if not groups:
            return None
        group = group_state(groups[0])
        latest = self._rows("SELECT * FROM error_events WHERE id = ?", [group["latest_event_id"]])
        group["latest_event"] = _error_event(latest[0]) if latest else None
        group["events"] = [_handled(row) for row in self._rows(
            "SELECT id, time_ns, trace_id, span_id, route, user_id, handled, release FROM error_events "
            "WHERE group_id = ? ORDER BY time_ns DESC, id DESC LIMIT 50", [group["id"]])]
        trace_id = latest[0]["trace_id"] if latest else None
        group["logs"] = [_log(row) for row in self._rows(
            "SELECT * FROM logs WHERE trace_id = ? ORDER BY time_ns", [trace_id])] if trace_id else []
        return group

    def error_group_activity(self, group_id, since_ns, until_ns, step_ns, breakdown_limit=10):
        """A group's events from ``since_ns`` to ``until_ns``: ``frequency``, ``[seconds,
        events]`` per bucket of ``step_ns`` (each bucket, zeros too), and ``breakdown``,
        the most frequent routes, releases and users (``None``: not known), with their
        counts."""
        if not 0 < int(group_id) <= INT64_MAX:
            return None
        starts = _buckets(since_ns, until_ns, step_ns)
        counts = {row["bucket"]: row["events"] for row in self._rows(
            ERROR_FREQUENCY, [since_ns, step_ns, int(group_id), since_ns, until_ns])}
        frequency = [[start, int(counts.get(index, 0))] for index, start in enumerate(starts)]
        breakdown = {name: [{"value": row["value"], "events": int(row["events"])} for row in self._rows(
            ERROR_BREAKDOWN.format(column=column), [int(group_id), since_ns, until_ns, int(breakdown_limit)])]
            for name, column in ERROR_BREAKDOWNS.items()}
        return {"step_ns": step_ns, "frequency": frequency, "breakdown": breakdown}

    def slow_call_p95_series(self, since_ns, until_ns, step_ns, calls, slow_only=False):
        """The p95 of each of ``calls`` (``(service, key)`` pairs) per bucket of ``step_ns``:
        ``{(service, key): [[seconds, p95_ms or None], ...]}``, every bucket of the window. Each
        p95 is the longest call of the duration bucket (``rollup.BUCKET_RATIO``) that holds it:
        exact when that bucket holds one duration, otherwise at most 9 % above. Read from the
        call rollup where ``since_ns`` and ``step_ns`` are whole blocks of it
        (``rollup.aligned_buckets``), else from the spans."""
        wanted = {(service, key) for service, key in calls}
        if not wanted:
            return {}
        starts = _buckets(since_ns, until_ns, step_ns)
        groups = self.rollup.groups(since_ns, until_ns, by=("service", "call_key"), step=(since_ns, step_ns),
                                    table=CALLS, service=tuple(sorted({service for service, _ in wanted})),
                                    call_key=tuple(sorted({key for _, key in wanted})),
                                    **({"is_slow": True} if slow_only else {}))
        return {call: [[start, _ms(groups[(index, *call)].percentile(95)) if (index, *call) in groups else None]
                       for index, start in enumerate(starts)] for call in wanted}

    def latest_metrics(self, since_ns, service=None):
        parameters = [since_ns]
        sql = LATEST_METRICS.format(service_clause=_service_clause(service, parameters))
        return [{**row, "monotonic": bool(row["monotonic"]), "attributes": _json(row["attributes"])}
                for row in self._rows(sql, parameters)]

    def metric_series(self, name, since_ns, service=None, instance=None):
        sql = ("SELECT service, instance, attributes, unit, kind, monotonic, temporality, time_ns, value "
               "FROM metric_points WHERE name = ? AND time_ns >= ?")
        parameters = [name, since_ns]
        for column, value in (("service", service), ("instance", instance)):
            if value:
                sql += f" AND {column} = ?"
                parameters.append(value)
        series = {}
        for row in self._rows(sql + " ORDER BY time_ns", parameters):
            key = (row["service"], row["instance"], row["attributes"])
            entry = series.get(key)
            if entry is None:
                # A cumulative monotonic sum (CPU time, GC collections) reads best as a rate.
                as_rate = bool(row["monotonic"]) and row["temporality"] != 1
                entry = series[key] = {"service": row["service"], "instance": row["instance"],
                                       "attributes": _json(row["attributes"]), "unit": row["unit"],
                                       "kind": row["kind"], "as_rate": as_rate, "points": []}
            entry["points"].append([row["time_ns"] / NS, row["value"]])
        for entry in series.values():
            if entry["as_rate"]:
                entry["rate"] = _rate(entry["points"])
        return list(series.values())


def _rate(points):
    """Per-second increase between consecutive points of a cumulative counter (resets skipped)."""
    rates = []
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        if t1 > t0 and v0 is not None and v1 is not None and v1 >= v0:
            rates.append([t1, (v1 - v0) / (t1 - t0)])
    return rates


def _span(row):
    span = dict(row)
    for column in ("attributes", "events", "links"):
        span[column] = _json(span[column]) or ([] if column != "attributes" else {})
    span["duration_ms"] = span["duration_ns"] / 1e6
    span["is_root"], span["is_error"] = bool(span["is_root"]), bool(span["is_error"])
    return span


def _handled(row):
    return {**row, "handled": None if row["handled"] is None else bool(row["handled"])}


def _log(row):
    return {**row, "attributes": _json(row["attributes"])}


def _error_event(row):
    return {**_handled(row), "event": _json(row["event"])}
