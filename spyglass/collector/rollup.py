"""Requests per minute: what the summaries (services, routes, a service's page, its series
and release comparison) read instead of every request span.

``request_minutes`` holds, per minute of start time, service, method, route, root span name,
release (``service.version``) and duration bucket: the requests, the errors among them, and
their total, least and greatest duration. Buckets grow by ``BUCKET_RATIO`` (about 9 %), so
a group's histogram is tens of rows however many requests it has, and the request of a
nearest rank lies in a known bucket:

- services, routes and a service's summary find its exact duration there, by a seek in a
  duration-ordered index that reads only that bucket's durations (``exact_percentiles``);
- the series over time and the release comparison give the greatest duration in that
  bucket: exact when the bucket holds one duration, otherwise at most 9 % above.

The store's maintenance thread rolls minutes up (``roll_up``) once ``LAG_NS`` has passed
since they ended, moving the watermark on. The minutes after it, and the partial minutes
at a window's edges, are read from the spans, so that a summary is exact and current.
Spans that arrive after their minute was rolled up (late) are found by the store
(``_late_minutes``: on SQLite, the rows written since the last roll-up, any process's; on
PostgreSQL, those this process wrote): a window reads their minutes from the spans until
the next round rolls them up again. Spans another PostgreSQL collector wrote late are
found by ``RECHECK_NS``'s recount of each minute, at the next roll-up.
"""
import math
import time
from dataclasses import dataclass, field

NS = 1_000_000_000
MINUTE_NS = 60 * NS
#: Each duration bucket's durations are up to this factor longer than the one before's.
BUCKET_RATIO = 2 ** 0.125
_LOG_RATIO = math.log(BUCKET_RATIO)
#: A minute is rolled up once this long has passed since it ended (spans are sent when
#: they end, a batch every few seconds).
LAG_NS = 2 * MINUTE_NS
#: At each roll-up, the minutes this far behind the watermark are recounted, and rolled up
#: again where spans came since.
RECHECK_NS = 15 * MINUTE_NS
#: Minutes rolled up in one round (catching up after an upgrade or a pause).
CHUNK_MINUTES = 10
INT64_MAX = (1 << 63) - 1

#: Schema 6 of both stores, with their 64-bit integer type (never edit: append a migration).
#: Per minute, service, route, release and duration bucket; and how far that is rolled up:
#: the watermark, and the store's ``_rollup_mark`` then (SQLite: the greatest span rowid).
ROLLUP_SCHEMA = """
    CREATE TABLE request_minutes (
        minute_ns {integer} NOT NULL, service TEXT NOT NULL, http_method TEXT, route TEXT, name TEXT,
        release TEXT NOT NULL, bucket INTEGER NOT NULL, requests {integer} NOT NULL, errors {integer} NOT NULL,
        total_ns {integer} NOT NULL, min_ns {integer} NOT NULL, max_ns {integer} NOT NULL
    );
    CREATE INDEX request_minutes_by_service ON request_minutes (service, minute_ns);
    CREATE INDEX request_minutes_by_time ON request_minutes (minute_ns);
    CREATE TABLE rollup_state (watermark_ns {integer} NOT NULL, mark {integer} NOT NULL);
    INSERT INTO rollup_state (watermark_ns, mark) VALUES (0, 0)
"""
COLUMNS = ("minute_ns", "service", "http_method", "route", "name", "release", "bucket",
           "requests", "errors", "total_ns", "min_ns", "max_ns")
INSERT = f"INSERT INTO request_minutes ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
DELETE = "DELETE FROM request_minutes WHERE minute_ns >= ? AND minute_ns < ?"
SET_STATE = "UPDATE rollup_state SET watermark_ns = CASE WHEN watermark_ns < ? THEN ? ELSE watermark_ns END, mark = ?"
#: The request spans of a time range, as rolled up.
REQUESTS = """
    SELECT service, http_method, route, name, resource_key, start_ns, duration_ns, is_error
    FROM spans WHERE is_root AND start_ns >= ? AND start_ns < ? {filters}
"""
#: A group's dimensions (``Rollup.groups``' ``by``), as SQL over both tables.
DIMENSIONS = {"service": "service", "http_method": "http_method", "route": "route",
              "route_or_name": "coalesce(route, name)", "release": "release"}
ROLLED = """
    SELECT {dimensions} bucket, sum(requests) AS requests, sum(errors) AS errors, sum(total_ns) AS total_ns,
           min(min_ns) AS min_ns, max(max_ns) AS max_ns
    FROM request_minutes WHERE minute_ns >= ? AND minute_ns < ? {filters}
    GROUP BY {names} bucket
"""
MINUTE_COUNTS = f"""
    SELECT start_ns / {MINUTE_NS} AS minute, count(*) AS requests FROM spans
    WHERE is_root AND start_ns >= ? AND start_ns < ? GROUP BY start_ns / {MINUTE_NS}
"""
ROLLED_COUNTS = f"""
    SELECT minute_ns / {MINUTE_NS} AS minute, sum(requests) AS requests FROM request_minutes
    WHERE minute_ns >= ? AND minute_ns < ? GROUP BY minute_ns / {MINUTE_NS}
"""


def bucket_of(duration_ns):
    """The duration bucket of ``duration_ns``: never smaller for a longer duration."""
    return int(math.log(duration_ns) / _LOG_RATIO) if duration_ns > 1 else 0


def floor_minute(time_ns):
    return time_ns // MINUTE_NS * MINUTE_NS


def ceil_minute(time_ns):
    return -(-time_ns // MINUTE_NS) * MINUTE_NS


@dataclass
class Group:
    """The requests of one group: counts, and per duration bucket ``[requests, least, greatest]``."""
    requests: int = 0
    errors: int = 0
    total_ns: int = 0
    max_ns: int = None
    buckets: dict = field(default_factory=dict)

    def add(self, bucket, requests, errors, total_ns, min_ns, max_ns):
        self.requests += int(requests)
        self.errors += int(errors)
        self.total_ns += int(total_ns)
        self.max_ns = max_ns if self.max_ns is None else max(self.max_ns, max_ns)
        cell = self.buckets.get(bucket)
        if cell is None:
            self.buckets[bucket] = [int(requests), min_ns, max_ns]
        else:
            cell[0] += int(requests)
            cell[1], cell[2] = min(cell[1], min_ns), max(cell[2], max_ns)

    def ranked(self, percent):
        """``(least, greatest, offset)``: the bucket holding the request of nearest rank
        ``percent``, and that request's rank among the bucket's (from 0)."""
        rank = (self.requests * percent + 99) // 100
        below = 0
        for bucket in sorted(self.buckets):
            count, least, greatest = self.buckets[bucket]
            if below + count >= rank:
                return least, greatest, rank - below - 1
            below += count
        return None

    def percentile(self, percent):
        """The greatest duration in the bucket of nearest rank ``percent`` (exact when the
        bucket holds one duration; at most ``BUCKET_RATIO`` times the exact one)."""
        found = self.ranked(percent) if self.requests else None
        return None if found is None else found[1]


class Rollup:
    """A store's per-minute rollup of requests: read by ``groups``, kept by ``roll_up``."""

    def __init__(self, store):
        self.store = store
        self.checked_all = False  # the first roll-up of a process recounts every minute

    # -- reading -------------------------------------------------------------------------

    def rolled_until(self):
        """The end of the minutes whose rollup is complete: the watermark, or the first
        minute with late spans before it."""
        state = self.store._rows("SELECT watermark_ns, mark FROM rollup_state")
        if not state or not state[0]["watermark_ns"]:
            return 0
        watermark, mark = state[0]["watermark_ns"], state[0]["mark"]
        late = self.store._late_minutes(mark, watermark)
        return min(late, default=watermark // MINUTE_NS) * MINUTE_NS

    def groups(self, since_ns, until_ns=None, by=(), step=None, releases=None, **equal):
        """``{key: Group}`` of the requests started from ``since_ns`` to ``until_ns`` (open:
        ``None``) whose columns ``equal`` the values given (``route_or_name``: the route or
        the root span's name), keyed by the values of ``by`` (``DIMENSIONS``); with ``step``
        ``(origin_ns, step_ns)`` (whole minutes), by time bucket first; of ``releases`` only."""
        until_ns = INT64_MAX if until_ns is None else until_ns
        first, rolled_end = ceil_minute(since_ns), min(self.rolled_until(), floor_minute(until_ns))
        groups = {}
        edges = [(since_ns, until_ns)]
        if rolled_end > first:
            edges = [(since_ns, first), (rolled_end, until_ns)]
            self._add_rolled(groups, first, rolled_end, by, step, releases, equal)
        for low, high in edges:
            if high > low:
                self._add_spans(groups, low, high, by, step, releases, equal)
        return groups

    def _add_rolled(self, groups, since_ns, until_ns, by, step, releases, equal):
        parameters, dimensions, names = [], "", ""
        if step:
            dimensions, names = "(minute_ns - ?) / ? AS time_bucket, ", "time_bucket, "
            parameters += step
        dimensions += "".join(f"{DIMENSIONS[name]} AS {name}, " for name in by)
        names += "".join(f"{name}, " for name in by)
        parameters += [since_ns, until_ns]
        filters = _filters(equal, parameters)
        if releases is not None:
            filters += f" AND release IN ({', '.join('?' * len(releases))})"
            parameters += list(releases)
        for row in self.store._rows(ROLLED.format(dimensions=dimensions, names=names, filters=filters), parameters):
            key = ((row["time_bucket"],) if step else ()) + tuple(row[name] for name in by)
            groups.setdefault(key, Group()).add(row["bucket"], row["requests"], row["errors"], row["total_ns"],
                                                row["min_ns"], row["max_ns"])

    def _add_spans(self, groups, since_ns, until_ns, by, step, releases, equal):
        parameters = [since_ns, until_ns]
        filters = _filters(equal, parameters)
        versions = self._versions()
        for row in self.store._rows(REQUESTS.format(filters=filters), parameters):
            row["release"] = versions.get(row["resource_key"], "")
            if releases is not None and row["release"] not in releases:
                continue
            row["route_or_name"] = row["name"] if row["route"] is None else row["route"]
            key = tuple(row[name] for name in by)
            if step:
                key = ((row["start_ns"] - step[0]) // step[1], *key)
            duration = row["duration_ns"]
            groups.setdefault(key, Group()).add(bucket_of(duration), 1, bool(row["is_error"]), duration,
                                                duration, duration)

    def _versions(self):
        """Each process's release (``service.version``, ``""`` for none), by resource key."""
        return {row["key"]: row["version"] or "" for row in self.store._rows("SELECT key, version FROM resources")}

    def exact_percentiles(self, group, where, parameters, percents):
        """``{"pNN_ns": duration}``: the exact nearest-rank durations of ``group``, whose
        requests are the spans of ``where`` (with ``parameters``): one seek each, reading
        only the durations of the bucket that holds it. ``None`` where the group is empty;
        the bucket's greatest where the spans no longer hold it (retention deleted some)."""
        seeks, arguments, fallback = [], [], {}
        for percent in percents:
            found = group.ranked(percent) if group.requests else None
            if found is None:
                seeks.append(f"NULL AS p{percent}_ns")
                continue
            least, greatest, offset = found
            fallback[f"p{percent}_ns"] = greatest
            seeks.append(f"(SELECT duration_ns FROM spans WHERE {where} AND duration_ns >= ? AND duration_ns <= ? "
                         f"ORDER BY duration_ns LIMIT 1 OFFSET ?) AS p{percent}_ns")
            arguments += [*parameters, least, greatest, offset]
        row = self.store._rows(f"SELECT {', '.join(seeks)}", arguments)[0]
        return {name: fallback.get(name) if value is None else value for name, value in row.items()}

    # -- rolling up ----------------------------------------------------------------------

    def roll_up(self, now_ns=None):
        """Roll up the next minutes past the watermark that ended ``LAG_NS`` ago, and again
        those with late spans; ``True`` if more minutes are ready than one round takes."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        state = self.store._rows("SELECT watermark_ns, mark FROM rollup_state")[0]
        watermark, old_mark = state["watermark_ns"], state["mark"]
        if not watermark:
            oldest = self.store._rows("SELECT min(start_ns) AS oldest FROM spans WHERE is_root")[0]["oldest"]
            if oldest is None:
                return False
            watermark = floor_minute(oldest)
        target = floor_minute(now_ns - LAG_NS)
        end = min(target, watermark + CHUNK_MINUTES * MINUTE_NS) if target > watermark else watermark
        mark = self.store._rollup_mark(end)  # before reading: what is written after it is late
        late = self.store._late_minutes(old_mark, watermark, mark)
        minutes = set(late)
        if end == target and (end > watermark or not self.checked_all):
            minutes |= self._miscounted(0 if not self.checked_all else watermark - RECHECK_NS, watermark)
            self.checked_all = True
        ranges = _ranges(minutes) + ([(watermark, end)] if end > watermark else [])
        if not ranges and mark == old_mark:
            return False
        rows = []
        versions = self._versions()
        for low, high in ranges:
            rows += rolled(self.store._rows(REQUESTS.format(filters=""), [low, high]), versions)
        self.store._write_rollup([(DELETE, ranges), (INSERT, rows), (SET_STATE, [(end, end, mark)])])
        self.store._rolled_up(late)
        return end < target

    def _miscounted(self, since_ns, until_ns):
        """The minutes from ``since_ns`` to ``until_ns`` whose requests the rollup does not count."""
        if until_ns <= since_ns:
            return set()
        spans = {row["minute"]: row["requests"] for row in self.store._rows(MINUTE_COUNTS, [since_ns, until_ns])}
        rolled_counts = {row["minute"]: row["requests"]
                         for row in self.store._rows(ROLLED_COUNTS, [since_ns, until_ns])}
        return {minute for minute in set(spans) | set(rolled_counts)
                if int(spans.get(minute, 0)) != int(rolled_counts.get(minute, 0))}


def rolled(rows, versions):
    """The rows of ``request_minutes`` (``COLUMNS``) that the request spans ``rows`` make."""
    cells = {}
    for row in rows:
        duration = row["duration_ns"]
        key = (floor_minute(row["start_ns"]), row["service"], row["http_method"], row["route"], row["name"],
               versions.get(row["resource_key"], ""), bucket_of(duration))
        cell = cells.get(key)
        if cell is None:
            cells[key] = [1, int(bool(row["is_error"])), duration, duration, duration]
        else:
            cell[0] += 1
            cell[1] += bool(row["is_error"])
            cell[2] += duration
            cell[3], cell[4] = min(cell[3], duration), max(cell[4], duration)
    return [(*key, *cell) for key, cell in cells.items()]


def _ranges(minutes):
    """Minute numbers as ``[(start_ns, end_ns)]`` ranges, consecutive ones joined."""
    ranges = []
    for minute in sorted(minutes):
        if ranges and ranges[-1][1] == minute * MINUTE_NS:
            ranges[-1] = (ranges[-1][0], (minute + 1) * MINUTE_NS)
        else:
            ranges.append((minute * MINUTE_NS, (minute + 1) * MINUTE_NS))
    return ranges


def _filters(equal, parameters):
    clauses = []
    for name, value in equal.items():
        if name == "route_or_name":
            clauses.append("(route = ? OR name = ?)")
            parameters += [value, value]
        elif value is None:
            clauses.append(f"{name} IS NULL")
        else:
            clauses.append(f"{name} = ?")
            parameters.append(value)
    return "".join(f" AND {clause}" for clause in clauses)
