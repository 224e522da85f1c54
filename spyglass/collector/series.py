"""A service over time: its requests in time buckets, its releases, and its metrics summed
across its processes. Backend-independent, as ``queries``: the same SQL on SQLite and
PostgreSQL through the store's ``_rows(sql, parameters)``, grouped in the database so that
only the buckets cross the connection.

A release is a ``service.version``: a resource attribute, so every process (resource row)
belongs to one. Spans carry their resource's key, so a release's requests are those of
its resource keys; the resource rows are few (one per process), and read whole.
"""
import json
import math

from .queries import PERCENTILES, _percentile_column, route_name
from .rollup import MINUTE_NS, aligned_buckets

NS = 1_000_000_000
#: Buckets per chart at most: a step that would make more is widened.
MAX_BUCKETS = 360
#: Steps a chart's bucket may take, seconds: the smallest that keeps under ``MAX_BUCKETS``.
STEPS = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
#: A route is "slower" in a release when its p95 grew by this factor and this many ms.
SLOWER_FACTOR, SLOWER_MS = 1.2, 1.0
UNVERSIONED = ""
#: Routes a service's page lists at most.
MAX_ROUTES = 500
#: Over a window this long or longer, the series' buckets are whole minutes by default (so
#: that they are read from the rollup).
ROLLUP_WINDOW_NS = 3600 * NS

SERIES = f"""
    SELECT bucket, count(*) AS requests, count(*) FILTER (WHERE is_error) AS errors,
           {", ".join(_percentile_column(p) for p in PERCENTILES)}
    FROM (SELECT bucket, duration_ns, is_error,
                 row_number() OVER (PARTITION BY bucket ORDER BY duration_ns) AS rank_asc,
                 count(*) OVER (PARTITION BY bucket) AS n
          FROM (SELECT (start_ns - ?) / ? AS bucket, duration_ns, is_error FROM spans
                WHERE is_root AND service = ? AND start_ns >= ? AND start_ns < ? {{route_clause}}) AS bucketed
         ) AS ranked
    GROUP BY bucket ORDER BY bucket
"""
RELEASE_SPANS = """
    SELECT resource_key, min(start_ns) AS first_ns, max(start_ns) AS last_ns, count(*) AS requests
    FROM spans WHERE is_root AND service = ? AND start_ns >= ? AND start_ns < ?
    GROUP BY resource_key
"""
NEW_ERRORS = """
    SELECT g.id, g.type, g.message, g.culprit, count(*) AS events
    FROM error_events AS e JOIN error_groups AS g ON g.id = e.group_id
    WHERE e.time_ns >= ? AND e.time_ns < ? AND e.resource_key IN ({current})
      AND NOT EXISTS (SELECT 1 FROM error_events AS p WHERE p.group_id = e.group_id
                      AND p.resource_key IN ({previous}))
    GROUP BY g.id, g.type, g.message, g.culprit
    ORDER BY events DESC, g.id LIMIT 50
"""
METRIC_BUCKETS = """
    SELECT instance, attributes, bucket, avg(value) AS mean, sum(value) AS total, max(value) AS highest,
           max(time_ns) AS last_ns,
           max(unit) AS unit, max(kind) AS kind, max(CASE WHEN monotonic THEN 1 ELSE 0 END) AS monotonic,
           min(temporality) AS temporality
    FROM (SELECT instance, attributes, (time_ns - ?) / ? AS bucket, value, time_ns, unit, kind, monotonic,
                 temporality
          FROM metric_points WHERE name = ? AND service = ? AND time_ns >= ? AND time_ns < ?) AS bucketed
    GROUP BY instance, attributes, bucket
    ORDER BY bucket
"""
INSTANCES = "SELECT count(*) AS instances FROM resources WHERE service = ? AND last_seen_ns >= ?"
SERVICE_METRIC_NAMES = """
    SELECT service, name, max(unit) AS unit, max(kind) AS kind, count(DISTINCT instance) AS instances,
           max(time_ns) AS last_ns, max(CASE WHEN monotonic THEN 1 ELSE 0 END) AS monotonic
    FROM metric_points WHERE time_ns >= ? AND time_ns < ? {service_clause}
    GROUP BY service, name ORDER BY service, name
"""

#: How a metric of a service's processes adds up to the service's: ``sum`` where each process
#: has its own share (CPU time, memory, threads, queues), ``mean`` where the value is a ratio or
#: a typical value (utilization, durations). Metrics not named here: ``mean`` for ratios
#: (unit ``1``) and distributions, ``sum`` for the rest.
AGGREGATION = {
    "process.cpu.utilization": "mean", "process.cpu.time": "sum", "process.memory.usage": "sum",
    "process.memory.virtual": "sum", "process.thread.count": "sum", "process.open_file_descriptor.count": "sum",
    "process.context_switches": "sum", "process.paging.faults": "sum", "cpython.gc.collections": "sum",
    "cpython.gc.collected_objects": "sum", "cpython.gc.pause_time": "sum",
    "http.server.request.duration": "mean", "db.client.operation.duration": "mean",
    "spyglass.queue.queued": "sum", "spyglass.queue.dropped": "sum",
}
DISTRIBUTIONS = ("histogram", "exponential_histogram", "summary")


def aggregation_of(name, unit=None, kind=None):
    """``sum`` or ``mean``: how ``name``'s values of several processes make their service's."""
    if name in AGGREGATION:
        return AGGREGATION[name]
    return "mean" if unit == "1" or kind in DISTRIBUTIONS else "sum"


def choose_step(since_ns, until_ns, step_s=None):
    """Seconds per bucket: ``step_s`` if given and it keeps the buckets under ``MAX_BUCKETS``,
    else the smallest of ``STEPS`` that does."""
    span_s = max(1, (until_ns - since_ns) / NS)
    least = span_s / MAX_BUCKETS
    if step_s and step_s >= least:
        return max(1, int(min(step_s, span_s)))  # one bucket at most as long as the window
    return next((step for step in STEPS if step >= least), math.ceil(least))


def _columns(rows, since_ns, step, buckets):
    """The series of ``rows`` (by bucket number: requests, errors, ``pNN_ns``) as columns,
    ``buckets`` of ``step`` seconds from ``since_ns``; buckets without a row are empty."""
    columns = {name: [] for name in ("t", "requests", "rps", "errors", "error_rate",
                                     *(f"p{p}_ms" for p in PERCENTILES))}
    for bucket in range(buckets):
        row = rows.get(bucket) or {"requests": 0, "errors": 0}
        requests = int(row["requests"])
        columns["t"].append((since_ns + bucket * step * NS) / NS)
        columns["requests"].append(requests)
        columns["rps"].append(requests / step)
        columns["errors"].append(int(row["errors"]))
        columns["error_rate"].append(int(row["errors"]) / requests if requests else None)
        for p in PERCENTILES:
            value = row.get(f"p{p}_ns")
            columns[f"p{p}_ms"].append(None if value is None else value / 1e6)
    return {"step_s": step, "series": columns}


def _placeholders(values):
    return ", ".join("?" * len(values)) or "NULL"


def _version(attributes_json):
    try:
        version = json.loads(attributes_json).get("service.version")
    except (ValueError, AttributeError):
        return UNVERSIONED
    return UNVERSIONED if version in (None, "") else str(version)


class ServiceSeries:
    """The service-over-time queries of a store (anything with ``_rows``)."""

    def __init__(self, store):
        self.store = store

    def requests(self, service, since_ns, until_ns, step_s=None, route=None, method=None):
        """Requests per bucket: count, per second, error rate, p50/p95/p99, as columns
        (``t`` the bucket's start in unix seconds); empty buckets have no latency.

        A step of whole minutes (by default, over an hour or more) is read from the
        per-minute rollup (``rollup``): the buckets end with the block ``until_ns`` is in,
        and their percentiles are the greatest duration of the duration bucket of that rank
        (exact when it holds one duration, else at most 9 % above). Shorter steps read the
        spans, with exact percentiles."""
        step = choose_step(since_ns, until_ns, step_s)
        if not step_s and until_ns - since_ns >= ROLLUP_WINDOW_NS:
            step = max(step, MINUTE_NS // NS)
        if step * NS % MINUTE_NS == 0:
            return self._rolled_requests(service, since_ns, until_ns, step, route, method)
        step_ns = step * NS
        parameters = [since_ns, step_ns, service, since_ns, until_ns]
        route_clause = ""
        if route:
            route_clause += "AND (route = ? OR name = ?)"
            parameters += [route, route]
        if method:
            route_clause += " AND http_method = ?"
            parameters.append(method)
        rows = {row["bucket"]: row for row in self.store._rows(SERIES.format(route_clause=route_clause), parameters)}
        return _columns(rows, since_ns, step, math.ceil((until_ns - since_ns) / step_ns))

    def _rolled_requests(self, service, since_ns, until_ns, step, route, method):
        """``requests`` by whole minutes, from the rollup: as many buckets as the window
        holds steps, the last one ending where the longest block of the rollup that divides
        the step (a minute, ten, an hour) that ``until_ns`` is in ends."""
        step_ns = step * NS
        origin, count = aligned_buckets(since_ns, until_ns, step_ns)
        equal = {"service": service, **({"route_or_name": route} if route else {}),
                 **({"http_method": method} if method else {})}
        rows = {}
        for (bucket,), group in self.store.rollup.groups(origin, until_ns, step=(origin, step_ns), **equal).items():
            rows[bucket] = {"requests": group.requests, "errors": group.errors,
                            **{f"p{p}_ns": group.percentile(p) for p in PERCENTILES}}
        return _columns(rows, origin, step, count)

    def releases(self, service, since_ns, until_ns):
        """The service's releases with requests in the window, oldest first: version, first and
        last request, requests, its processes' resource keys; ``marker`` where the release
        started inside the window (a version change, or its processes first seen there)."""
        resources = {row["key"]: row for row in self.store._rows(
            "SELECT key, attributes, first_seen_ns FROM resources WHERE service = ?", [service])}
        releases = {}
        for row in self.store._rows(RELEASE_SPANS, [service, since_ns, until_ns]):
            resource = resources.get(row["resource_key"])
            version = _version(resource["attributes"]) if resource else UNVERSIONED
            release = releases.setdefault(version, {"version": version, "first_ns": row["first_ns"],
                                                    "last_ns": row["last_ns"], "requests": 0,
                                                    "resource_keys": [], "first_seen_ns": None})
            release["first_ns"] = min(release["first_ns"], row["first_ns"])
            release["last_ns"] = max(release["last_ns"], row["last_ns"])
            release["requests"] += int(row["requests"])
            release["resource_keys"].append(row["resource_key"])
            if resource:
                seen = resource["first_seen_ns"]
                release["first_seen_ns"] = seen if release["first_seen_ns"] is None else min(
                    release["first_seen_ns"], seen)
        ordered = sorted(releases.values(), key=lambda release: (release["first_ns"], release["version"]))
        for index, release in enumerate(ordered):
            started_here = (release["first_seen_ns"] or 0) >= since_ns
            release["marker"] = bool(index or (started_here and len(ordered) > 1))
            release["resource_keys"].sort()
        return ordered

    def compare(self, service, since_ns, until_ns, releases=None):
        """The latest release against the one before it, over the window: p95 and error rate
        per route (``slower`` where p95 grew past ``SLOWER_FACTOR`` and ``SLOWER_MS``), and
        the error groups the latest release has that the one before had not."""
        releases = self.releases(service, since_ns, until_ns) if releases is None else releases
        if len(releases) < 2:
            return {"current": releases[-1]["version"] if releases else None, "previous": None,
                    "routes": [], "new_errors": []}
        previous, current = releases[-2], releases[-1]
        current_keys, previous_keys = current["resource_keys"], previous["resource_keys"]
        routes = {}
        # p95 from the rollup's duration buckets (``rollup.Group.percentile``).
        for (release, method, route), group in self.store.rollup.groups(
                since_ns, until_ns, by=("release", "http_method", "route_or_name"),
                releases=(current["version"], previous["version"]), service=service).items():
            side = "current" if release == current["version"] else "previous"
            entry = routes.setdefault((method or "", route or ""), {
                "method": method, "route": route, "name": route_name(method, route), "current": None,
                "previous": None})
            entry[side] = {"requests": group.requests, "error_rate": group.errors / group.requests,
                           "p95_ms": group.percentile(95) / 1e6}
        for entry in routes.values():
            now, before = entry["current"], entry["previous"]
            entry["slower"] = bool(now and before and now["p95_ms"] > before["p95_ms"] * SLOWER_FACTOR
                                   and now["p95_ms"] - before["p95_ms"] >= SLOWER_MS)
            entry["more_errors"] = bool(now and before and now["error_rate"] > before["error_rate"])
            entry["p95_change"] = (now["p95_ms"] / before["p95_ms"] - 1
                                   if now and before and before["p95_ms"] else None)
        ordered = sorted(routes.values(), key=lambda e: (not e["slower"], -(e["p95_change"] or 0), e["name"]))
        new_errors = self.store._rows(
            NEW_ERRORS.format(current=_placeholders(current_keys), previous=_placeholders(previous_keys)),
            [since_ns, until_ns, *current_keys, *previous_keys])
        return {"current": current["version"], "previous": previous["version"], "routes": ordered,
                "new_errors": [{**row, "events": int(row["events"])} for row in new_errors]}

    def summary(self, service, since_ns, until_ns):
        """The service's requests, error rate and p50/p95/p99 over the window, and its processes."""
        row = self.store.request_stats(since_ns, until_ns, service=service).get(()) or {
            "requests": 0, "errors": 0, "max_ns": None, **{f"p{p}_ns": None for p in PERCENTILES}}
        requests = row["requests"]
        instances = self.store._rows(INSTANCES, [service, since_ns])[0]["instances"]
        return {"requests": requests, "errors": int(row["errors"] or 0),
                "error_rate": int(row["errors"] or 0) / requests if requests else 0.0,
                **{f"p{p}_ms": None if row[f"p{p}_ns"] is None else row[f"p{p}_ns"] / 1e6 for p in PERCENTILES},
                "max_ms": None if row["max_ns"] is None else row["max_ns"] / 1e6, "instances": int(instances)}

    def routes(self, service, since_ns, until_ns):
        """The service's routes in the window (for choosing one), busiest first."""
        groups = self.store.rollup.groups(since_ns, until_ns, by=("http_method", "route_or_name"), service=service)
        busiest = sorted(groups.items(), key=lambda item: (-item[1].requests, item[0][1] or ""))[:MAX_ROUTES]
        return [{"method": method, "route": route, "name": route_name(method, route), "requests": group.requests}
                for (method, route), group in busiest]

    def metric_names(self, since_ns, until_ns, service=None):
        """The metrics reported in the window per service (of ``service`` only where given),
        each with how its processes add up and how many reported it."""
        parameters = [since_ns, until_ns]
        service_clause = ""
        if service:
            service_clause = "AND service = ?"
            parameters.append(service)
        return [{**row, "instances": int(row["instances"]), "monotonic": bool(row["monotonic"]),
                 "aggregation": aggregation_of(row["name"], row["unit"], row["kind"])}
                for row in self.store._rows(SERVICE_METRIC_NAMES.format(service_clause=service_clause), parameters)]

    def metric(self, name, service, since_ns, until_ns, step_s=None):
        """Metric ``name`` of ``service``, its processes summed or averaged (``aggregation_of``)
        per bucket, one series per attribute set. A cumulative counter is charted as its rate:
        each process's increase per second between buckets, then added up."""
        step = choose_step(since_ns, until_ns, step_s)
        rows = self.store._rows(METRIC_BUCKETS, [since_ns, step * NS, name, service, since_ns, until_ns])
        if not rows:
            return {"name": name, "service": service, "step_s": step, "unit": None, "kind": None,
                    "aggregation": aggregation_of(name), "as_rate": False, "series": []}
        first = rows[0]
        as_rate = bool(first["monotonic"]) and first["kind"] == "sum"
        deltas = first["temporality"] == 1  # each point is the increase since the one before
        aggregation = aggregation_of(name, first["unit"], first["kind"])
        per_process = {}  # (attributes, instance) -> [(bucket, value)]
        previous = {}
        for row in rows:
            key = (row["attributes"], row["instance"])
            if as_rate and deltas:
                value = None if row["total"] is None else row["total"] / step
            elif as_rate:
                last = previous.get(key)
                previous[key] = row
                if last is None or row["highest"] is None or last["highest"] is None:
                    continue
                elapsed_s = (row["last_ns"] - last["last_ns"]) / NS
                increase = row["highest"] - last["highest"]
                if elapsed_s <= 0 or increase < 0:  # a restart: the counter began again
                    continue
                value = increase / elapsed_s
            else:
                value = row["mean"]
            if value is not None:
                per_process.setdefault(key, []).append((row["bucket"], value))
        combined = {}  # attributes -> bucket -> values of the processes
        for (attributes, _), points in per_process.items():
            buckets = combined.setdefault(attributes, {})
            for bucket, value in _filled(points):
                buckets.setdefault(bucket, []).append(value)
        series = []
        for attributes, buckets in sorted(combined.items(), key=lambda item: item[0] or ""):
            points = [[(since_ns + bucket * step * NS) / NS,
                       sum(values) if aggregation == "sum" else sum(values) / len(values)]
                      for bucket, values in sorted(buckets.items())]
            series.append({"attributes": json.loads(attributes) if attributes else None,
                           "instances": len({i for (a, i) in per_process if a == attributes}),
                           "points": points})
        return {"name": name, "service": service, "step_s": step, "unit": first["unit"], "kind": first["kind"],
                "aggregation": aggregation, "as_rate": as_rate, "series": series}


def _filled(points):
    """A process's ``(bucket, value)`` points with the buckets between them that it has no
    point in (it reports less often than a bucket lasts) holding its previous value, so
    that a sum over processes does not dip where one of them was between reports."""
    filled = []
    for (bucket, value), following in zip(points, [*points[1:], None]):
        filled.append((bucket, value))
        if following is not None:
            filled += [(gap, value) for gap in range(bucket + 1, following[0])]
    return filled
