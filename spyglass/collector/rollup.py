"""Requests per minute, ten minutes and hour: what the summaries (services, routes, a
service's page, its series and release comparison) read instead of every request span.

``request_rollup`` holds, per block of time (``LEVELS``: a minute, ten minutes, an hour, by
``grain_ns``), service, method, route, root span name, release (``service.version``) and
duration bucket: the requests, the errors among them, and their total, least and greatest
duration. A window is read from the longest blocks that fit in it, then shorter ones at its
ends, then the spans of its partial minutes (``groups``). Buckets grow by ``BUCKET_RATIO``
(about 9 %), so a group's histogram is tens of rows however many requests it has, and the
request of a nearest rank lies in a known bucket:

- services, routes and a service's summary find its exact duration there, by a seek in a
  duration-ordered index that reads only that bucket's durations (``exact_percentiles``);
- the series over time and the release comparison give the greatest duration in that
  bucket: exact when the bucket holds one duration, otherwise at most 9 % above.

The store's maintenance thread rolls minutes up (``roll_up``) once ``LAG_NS`` has passed
since they ended, moving the watermark on, and the minutes of each block the watermark
passed into that block. The minutes after it, and the partial minutes
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
LOG_RATIO = math.log(BUCKET_RATIO)
#: A minute is rolled up once this long has passed since it ended (spans are sent when
#: they end, a batch every few seconds).
LAG_NS = 2 * MINUTE_NS
#: At each roll-up, the minutes this far behind the watermark are recounted, and rolled up
#: again where spans came since.
RECHECK_NS = 15 * MINUTE_NS
#: Minutes rolled up in one round (catching up after an upgrade or a pause).
CHUNK_MINUTES = 10
#: Minutes with late requests are rolled up again at most this often (a sender that sends
#: out of time order, as a backfill does, would have every minute rolled up every round);
#: meanwhile windows read them from the spans.
LATE_INTERVAL_S = 30.0
#: The blocks of time rolled up, each of whole blocks of the one after it, longest first.
LEVELS = (3600 * NS, 600 * NS, MINUTE_NS)
INT64_MAX = (1 << 63) - 1

COLUMNS = ("grain_ns", "start_ns", "service", "http_method", "route", "name", "release", "bucket",
           "requests", "errors", "total_ns", "min_ns", "max_ns")
INSERT = f"INSERT INTO request_rollup ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
DELETE = "DELETE FROM request_rollup WHERE grain_ns = ? AND start_ns >= ? AND start_ns < ?"
#: A level's blocks from those of the level below: ``grain_ns`` twice, the finer grain, the range.
COARSER = f"""
    INSERT INTO request_rollup ({', '.join(COLUMNS)})
    SELECT ?, block, service, http_method, route, name, release, bucket, sum(requests), sum(errors),
           sum(total_ns), min(min_ns), max(max_ns)
    FROM (SELECT start_ns / ? * ? AS block, service, http_method, route, name, release, bucket, requests, errors,
                 total_ns, min_ns, max_ns
          FROM request_rollup WHERE grain_ns = ? AND start_ns >= ? AND start_ns < ?) AS finer
    GROUP BY block, service, http_method, route, name, release, bucket
"""
SET_STATE = "UPDATE rollup_state SET watermark_ns = CASE WHEN watermark_ns < ? THEN ? ELSE watermark_ns END, mark = ?"
#: A group's dimensions (``Rollup.groups``' ``by``), as SQL over both tables.
DIMENSIONS = {"service": "service", "http_method": "http_method", "route": "route", "name": "name",
              "route_or_name": "coalesce(route, name)", "release": "release", "resource_key": "resource_key"}
#: The columns of ``request_rollup`` that a minute's rows are keyed by, before the bucket.
KEYS = ("service", "http_method", "route", "name", "release")
ROLLED = """
    SELECT {dimensions} bucket, sum(requests) AS requests, sum(errors) AS errors, sum(total_ns) AS total_ns,
           min(min_ns) AS min_ns, max(max_ns) AS max_ns
    FROM request_rollup WHERE grain_ns = ? AND start_ns >= ? AND start_ns < ? {filters}
    GROUP BY {names} bucket
"""
#: The same of the request spans, each bucket by the store's ``BUCKET_SQL`` (``bucket_of``).
SPANS = """
    SELECT {{dimensions}} {bucket} AS bucket, count(*) AS requests, count(*) FILTER (WHERE is_error) AS errors,
           sum(duration_ns) AS total_ns, min(duration_ns) AS min_ns, max(duration_ns) AS max_ns
    FROM spans WHERE is_root AND start_ns >= ? AND start_ns < ? {{filters}}
    GROUP BY {{names}} {bucket}
"""
MINUTE_COUNTS = f"""
    SELECT start_ns / {MINUTE_NS} AS minute, count(*) AS requests FROM spans
    WHERE is_root AND start_ns >= ? AND start_ns < ? GROUP BY start_ns / {MINUTE_NS}
"""
ROLLED_COUNTS = f"""
    SELECT start_ns / {MINUTE_NS} AS minute, sum(requests) AS requests FROM request_rollup
    WHERE grain_ns = {MINUTE_NS} AND start_ns >= ? AND start_ns < ? GROUP BY start_ns / {MINUTE_NS}
"""


def bucket_of(duration_ns):
    """The duration bucket of ``duration_ns``: never smaller for a longer duration."""
    return int(math.log(duration_ns) / LOG_RATIO) if duration_ns > 1 else 0


def floor_minute(time_ns, grain_ns=MINUTE_NS):
    return time_ns // grain_ns * grain_ns


def ceil_minute(time_ns, grain_ns=MINUTE_NS):
    return -(-time_ns // grain_ns) * grain_ns


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
        self.late_rolled_at = 0.0  # time.monotonic() of the last roll-up of late minutes

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
        rolled_end = max(since_ns, min(self.rolled_until(), until_ns))
        # A series' time buckets take whole blocks only.
        levels = [grain for grain in LEVELS if not step or (step[1] % grain == 0 and step[0] % grain == 0)]
        groups = {}
        query = (by, step, releases, equal)
        self._add_range(groups, since_ns, rolled_end, levels, query)
        if until_ns > rolled_end:
            self._add_spans(groups, rolled_end, until_ns, *query)
        return groups

    def _add_range(self, groups, since_ns, until_ns, levels, query):
        """Add the requests from ``since_ns`` to ``until_ns`` (rolled up): the whole blocks of
        the first of ``levels`` inside, then the ends by the next levels, then by the spans."""
        if until_ns <= since_ns:
            return
        if not levels:
            self._add_spans(groups, since_ns, until_ns, *query)
            return
        grain, finer = levels[0], levels[1:]
        first, last = ceil_minute(since_ns, grain), floor_minute(until_ns, grain)
        if last <= first:
            self._add_range(groups, since_ns, until_ns, finer, query)
            return
        self._add_rolled(groups, grain, first, last, *query)
        self._add_range(groups, since_ns, first, finer, query)
        self._add_range(groups, last, until_ns, finer, query)

    def _add_rolled(self, groups, grain_ns, since_ns, until_ns, by, step, releases, equal):
        sql = _grouped(ROLLED, by, step, equal, releases)
        parameters = [*(step or ()), grain_ns, since_ns, until_ns, *_values(equal, releases)]
        for row in self.store._rows(sql, parameters):
            _group_of(groups, row, by, step).add(row["bucket"], row["requests"], row["errors"], row["total_ns"],
                                                 row["min_ns"], row["max_ns"])

    def _add_spans(self, groups, since_ns, until_ns, by, step, releases, equal):
        for row in self.span_cells(since_ns, until_ns, by, step, releases, equal):
            _group_of(groups, row, by, step).add(row["bucket"], row["requests"], row["errors"], row["total_ns"],
                                                 row["min_ns"], row["max_ns"])

    def span_cells(self, since_ns, until_ns, by, step=None, releases=None, equal=None):
        """The requests from ``since_ns`` to ``until_ns`` from the spans, counted per ``by``,
        process and duration bucket (``bucket_of``, as the store's ``BUCKET_SQL``) in the
        database; each row's ``release`` is then its process's."""
        equal = equal or {}
        columns = (*(name for name in by if name != "release"), "resource_key")
        sql = _grouped(SPANS.format(bucket=self.store.BUCKET_SQL), columns, step, equal, None)
        versions = self._versions()
        rows = []
        for row in self.store._rows(sql, [*(step or ()), since_ns, until_ns, *_values(equal, None)]):
            row["release"] = versions.get(row["resource_key"], "")
            if releases is None or row["release"] in releases:
                rows.append(row)
        return rows

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
        if late and time.monotonic() - self.late_rolled_at < LATE_INTERVAL_S:
            late, mark = {}, old_mark  # later: until then they stay late (past the old mark)
        elif late:
            self.late_rolled_at = time.monotonic()
        minutes = set(late)
        if end == target and (end > watermark or not self.checked_all):
            minutes |= self._miscounted(0 if not self.checked_all else watermark - RECHECK_NS, watermark)
            self.checked_all = True
        ranges = _ranges(minutes) + ([(watermark, end)] if end > watermark else [])
        if not ranges and mark == old_mark:
            return False
        cells = {}  # the processes of a release added up
        for low, high in ranges:
            for row in self.span_cells(low, high, KEYS, (0, MINUTE_NS)):
                key = (row["time_bucket"] * MINUTE_NS, *(row[name] for name in KEYS), row["bucket"])
                cell = cells.setdefault(key, [0, 0, 0, row["min_ns"], row["max_ns"]])
                cell[0] += int(row["requests"])
                cell[1] += int(row["errors"])
                cell[2] += int(row["total_ns"])
                cell[3], cell[4] = min(cell[3], row["min_ns"]), max(cell[4], row["max_ns"])
        rows = [(MINUTE_NS, *key, *cell) for key, cell in cells.items()]
        statements = [(DELETE, [(MINUTE_NS, low, high) for low, high in ranges]), (INSERT, rows)]
        for grain, finer in reversed(list(zip(LEVELS, LEVELS[1:]))):
            blocks = _blocks(ranges, grain, end)
            statements += [(DELETE, [(grain, low, high) for low, high in blocks]),
                           (COARSER, [(grain, grain, grain, finer, low, high) for low, high in blocks])]
        self.store._write_rollup([*statements, (SET_STATE, [(end, end, mark)])])
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


def _ranges(minutes):
    """Minute numbers as ``[(start_ns, end_ns)]`` ranges, consecutive ones joined."""
    ranges = []
    for minute in sorted(minutes):
        if ranges and ranges[-1][1] == minute * MINUTE_NS:
            ranges[-1] = (ranges[-1][0], (minute + 1) * MINUTE_NS)
        else:
            ranges.append((minute * MINUTE_NS, (minute + 1) * MINUTE_NS))
    return ranges


def _blocks(ranges, grain_ns, rolled_ns):
    """The blocks of ``grain_ns`` that ``ranges`` (just rolled up) reach and that end by
    ``rolled_ns`` (complete), as ``[(start_ns, end_ns)]``."""
    starts = set()
    for low, high in ranges:
        starts.update(range(floor_minute(low, grain_ns), min(high, floor_minute(rolled_ns, grain_ns)), grain_ns))
    return [(start, start + grain_ns) for start in sorted(starts)]


def _grouped(sql, by, step, equal, releases):
    """``sql`` (``ROLLED`` or ``SPANS``) grouped by the time bucket of ``step``, if any, and
    ``by``, with the filters of ``equal`` and ``releases``: its parameters are ``step``'s,
    the table's, then ``_values``."""
    dimensions = names = ""
    if step:
        dimensions, names = "(start_ns - ?) / ? AS time_bucket, ", "time_bucket, "
    dimensions += "".join(f"{DIMENSIONS[name]} AS {name}, " for name in by)
    names += "".join(f"{name}, " for name in by)
    filters = []
    for name, value in equal.items():
        if name == "route_or_name":
            filters.append("(route = ? OR name = ?)")
        else:
            filters.append(f"{name} IS NULL" if value is None else f"{name} = ?")
    if releases is not None:
        filters.append(f"release IN ({', '.join('?' * len(releases))})")
    return sql.format(dimensions=dimensions, names=names, filters="".join(f" AND {f}" for f in filters))


def _values(equal, releases):
    """The parameters of ``_grouped``'s filters."""
    values = []
    for name, value in equal.items():
        values += [value, value] if name == "route_or_name" else [] if value is None else [value]
    return values + list(releases or ())


def _group_of(groups, row, by, step):
    """The group of ``groups`` that ``row`` counts in, made if new."""
    key = ((row["time_bucket"],) if step else ()) + tuple(row[name] for name in by)
    return groups.setdefault(key, Group())
