"""Requests and calls per minute, ten minutes and hour: what the summaries (services,
routes, a service's page, its series and release comparison; slow calls) read instead of
every span.

Each rollup table (``TABLES``) holds, per block of time (``LEVELS``: a minute, ten minutes,
an hour, by ``grain_ns``), its keys and duration bucket, two counts, and the total, least
and greatest duration: ``request_rollup`` the requests per service, method, route, root
span name and release (``service.version``), and the errors among them; ``call_rollup`` the
calls per service, call key (the normalized statement or operation) and slow flag
(``spyglass.slow``), and the executions they stand for. A window is read from the longest
blocks that fit in it, then shorter ones at its ends, then the spans of its partial minutes
(``groups``). Buckets grow by ``BUCKET_RATIO`` (about 9 %), so a group's histogram is tens
of rows however many spans it has, and the span of a nearest rank lies in a known bucket:

- services, routes, a service's summary and slow calls find its exact duration there, by a
  seek in a duration-ordered index that reads only that bucket's durations
  (``exact_percentiles``);
- the series over time, the release comparison and slow calls' sparklines give the
  greatest duration in that bucket: exact when the bucket holds one duration, otherwise at
  most 9 % above.

The store's maintenance thread rolls minutes up (``roll_up``) once ``LAG_NS`` has passed
since they ended, moving the watermark (one for both tables) on, and the minutes of each
block the watermark passed into that block. The minutes after it, and the partial minutes
at a window's edges, are read from the spans, so that a summary is exact and current.
Spans that arrive after their minute was rolled up (late) are found by the store
(``_late_minutes``: on SQLite, the rows written since the last roll-up, any process's; on
PostgreSQL, those this process wrote): a window reads their minutes from the spans until
the next round rolls them up again, at once when no more came, else within
``LATE_INTERVAL_S``. Spans another PostgreSQL collector wrote late are found by
``RECHECK_NS``'s recount of each minute, at the next roll-up.
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
#: Minutes with late spans are rolled up again at most this often while more late spans
#: keep coming (a sender that sends out of time order, as a backfill does, would have every
#: minute rolled up every round); meanwhile windows read them from the spans.
LATE_INTERVAL_S = 30.0
#: The blocks of time rolled up, each of whole blocks of the one after it, longest first.
LEVELS = (3600 * NS, 600 * NS, MINUTE_NS)
INT64_MAX = (1 << 63) - 1

#: A group's dimensions (``Rollup.groups``' ``by``), as SQL over the spans and the rollup tables.
DIMENSIONS = {"service": "service", "http_method": "http_method", "route": "route", "name": "name",
              "route_or_name": "coalesce(route, name)", "release": "release", "resource_key": "resource_key",
              "call_key": "call_key", "is_slow": "is_slow"}
#: The keys a span is rolled up by that are not its own columns, as SQL over it: its release
#: is its process's (``service.version``, ``""`` for none).
ROLLED_KEYS = {"release": "coalesce((SELECT version FROM resources WHERE resources.key = spans.resource_key), '')"}
#: What every rollup table's rows hold after their two counts.
DURATIONS = ("total_ns", "min_ns", "max_ns")


@dataclass(frozen=True)
class Table:
    """A rollup table: of which spans (``spans``, SQL), keyed per block by ``keys`` and the
    duration bucket, counting them twice (``counts``: its columns and their SQL over the
    spans), read back as ``group`` objects. The columns of ``by_time`` are filtered on the
    spans without their indexes: a window's few minutes are then read in a time-ordered
    index, not every span of the service in a duration-ordered one (SQLite's choice)."""
    name: str
    spans: str
    keys: tuple
    counts: tuple
    group: type
    by_time: tuple = ()

    @property
    def columns(self):
        return ("grain_ns", "start_ns", *self.keys, "bucket", *(name for name, _ in self.counts), *DURATIONS)

    def delete(self):
        return f"DELETE FROM {self.name} WHERE grain_ns = ? AND start_ns >= ? AND start_ns < ?"

    def coarser(self):
        """A level's blocks from those of the level below: ``grain_ns`` twice, the finer grain, the range."""
        keys, counts = ", ".join(self.keys), [name for name, _ in self.counts]
        return f"""
            INSERT INTO {self.name} ({', '.join(self.columns)})
            SELECT ?, block, {keys}, bucket, {', '.join(f'sum({name})' for name in counts + ['total_ns'])},
                   min(min_ns), max(max_ns)
            FROM (SELECT start_ns / ? * ? AS block, {keys}, bucket, {', '.join(counts)}, {', '.join(DURATIONS)}
                  FROM {self.name} WHERE grain_ns = ? AND start_ns >= ? AND start_ns < ?) AS finer
            GROUP BY block, {keys}, bucket
        """

    def rolled(self):
        """Its rows of one grain and range, grouped by ``{names}`` and bucket."""
        return f"""
            SELECT {{dimensions}} bucket, {' '.join(f'sum({name}) AS {name},' for name, _ in self.counts)}
                   sum(total_ns) AS total_ns, min(min_ns) AS min_ns, max(max_ns) AS max_ns
            FROM {self.name} WHERE grain_ns = ? AND start_ns >= ? AND start_ns < ? {{filters}}
            GROUP BY {{names}} bucket
        """

    def of_spans(self, bucket_sql):
        """The same of its spans, each bucket by the store's ``BUCKET_SQL`` (``bucket_of``)."""
        return f"""
            SELECT {{dimensions}} {bucket_sql} AS bucket, {' '.join(f'{sql} AS {name},' for name, sql in self.counts)}
                   sum(duration_ns) AS total_ns, min(duration_ns) AS min_ns, max(duration_ns) AS max_ns
            FROM spans WHERE {self.spans} AND start_ns >= ? AND start_ns < ? {{filters}}
            GROUP BY {{names}} {bucket_sql}
        """

    def insert(self):
        return f"INSERT INTO {self.name} ({', '.join(self.columns)}) VALUES ({', '.join('?' * len(self.columns))})"

    def minutes_of_spans(self, bucket_sql):
        """Its rows of each minute of the spans from ``?`` to ``?`` (``minute``, then its
        columns after ``start_ns``), counted in the database; each span's release its
        process's (``ROLLED_KEYS``)."""
        keys = ", ".join(f"{ROLLED_KEYS.get(name, name)} AS {name}" for name in self.keys)
        return f"""
            SELECT start_ns / {MINUTE_NS} * {MINUTE_NS} AS minute, {keys}, {bucket_sql} AS bucket,
                   {', '.join(f'{sql} AS {name}' for name, sql in self.counts)}, sum(duration_ns) AS total_ns,
                   min(duration_ns) AS min_ns, max(duration_ns) AS max_ns
            FROM spans WHERE {self.spans} AND start_ns >= ? AND start_ns < ?
            GROUP BY minute, {', '.join(self.keys)}, bucket
        """

    def minute_counts(self):
        """Per minute of a range: the spans it counts, and what it holds of them."""
        first = self.counts[0][0]
        return (f"SELECT start_ns / {MINUTE_NS} AS minute, count(*) AS spans FROM spans "
                f"WHERE {self.spans} AND start_ns >= ? AND start_ns < ? GROUP BY start_ns / {MINUTE_NS}",
                f"SELECT start_ns / {MINUTE_NS} AS minute, sum({first}) AS spans FROM {self.name} "
                f"WHERE grain_ns = {MINUTE_NS} AND start_ns >= ? AND start_ns < ? GROUP BY start_ns / {MINUTE_NS}")

    def add(self, groups, row, by, step):
        """Count ``row`` (of ``rolled`` or ``of_spans``) in its group of ``groups``."""
        key = ((row["time_bucket"],) if step else ()) + tuple(row[name] for name in by)
        group = groups.get(key)
        if group is None:
            group = groups[key] = self.group()
        group.add(row["bucket"], *(row[name] for name, _ in self.counts), *(row[name] for name in DURATIONS))


SET_STATE = "UPDATE rollup_state SET watermark_ns = CASE WHEN watermark_ns < ? THEN ? ELSE watermark_ns END, mark = ?"


def bucket_of(duration_ns):
    """The duration bucket of ``duration_ns``: never smaller for a longer duration."""
    return int(math.log(duration_ns) / LOG_RATIO) if duration_ns > 1 else 0


def floor_minute(time_ns, grain_ns=MINUTE_NS):
    return time_ns // grain_ns * grain_ns


def ceil_minute(time_ns, grain_ns=MINUTE_NS):
    return -(-time_ns // grain_ns) * grain_ns


@dataclass
class Histogram:
    """Spans per duration bucket, ``[spans, least, greatest]``: where each nearest rank lies;
    and a second count of them (``tally``: what ``Group`` and ``CallGroup`` name it)."""
    spans: int = 0
    tally: int = 0
    total_ns: int = 0
    max_ns: int = None
    buckets: dict = field(default_factory=dict)

    def add(self, bucket, spans, tally, total_ns, min_ns, max_ns):
        self.spans += int(spans)
        self.tally += int(tally)
        self.total_ns += int(total_ns)
        self.max_ns = max_ns if self.max_ns is None else max(self.max_ns, max_ns)
        cell = self.buckets.get(bucket)
        if cell is None:
            self.buckets[bucket] = [int(spans), min_ns, max_ns]
        else:
            cell[0] += int(spans)
            cell[1], cell[2] = min(cell[1], min_ns), max(cell[2], max_ns)

    def ranked(self, percent):
        """``(least, greatest, offset)``: the bucket holding the span of nearest rank
        ``percent``, and that span's rank among the bucket's (from 0)."""
        rank = (self.spans * percent + 99) // 100
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
        found = self.ranked(percent) if self.spans else None
        return None if found is None else found[1]


class Group(Histogram):
    """The requests of one group, and the errors among them."""
    requests = property(lambda self: self.spans)
    errors = property(lambda self: self.tally)


class CallGroup(Histogram):
    """The calls of one group (spans), and the executions they stand for (``call_count``: an
    N+1 series folded into one span is as many)."""
    calls = property(lambda self: self.spans)
    executions = property(lambda self: self.tally)


#: Requests (local roots) per service, route, root span name and release.
REQUESTS = Table("request_rollup", "is_root", ("service", "http_method", "route", "name", "release"),
                 (("requests", "count(*)"), ("errors", "count(*) FILTER (WHERE is_error)")), Group)
#: Calls (spans with a call key: a query, an outbound request) per service, call key and
#: whether they were at or over their slow threshold (``spyglass.slow``).
CALLS = Table("call_rollup", "call_key IS NOT NULL", ("service", "call_key", "is_slow"),
              (("calls", "count(*)"), ("executions", "sum(coalesce(call_count, 1))")), CallGroup,
              by_time=("service", "call_key"))
TABLES = (REQUESTS, CALLS)
#: The spans some rollup table counts: those that are late when written behind the watermark.
ROLLED_SPANS = " OR ".join(f"({table.spans})" for table in TABLES)


class Rollup:
    """A store's per-minute rollups (``TABLES``): read by ``groups``, kept by ``roll_up``."""

    def __init__(self, store):
        self.store = store
        self.checked_all = False  # the first roll-up of a process recounts every minute
        self.late_rolled_at = 0.0  # time.monotonic() of the last roll-up of late minutes
        self.late_seen = {}  # the late minutes (and writes) found at the last round that left them

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

    def groups(self, since_ns, until_ns=None, by=(), step=None, releases=None, table=REQUESTS, **equal):
        """``{key: group}`` (``table.group``: ``Group`` of requests, ``CallGroup`` of calls) of
        ``table``'s spans started from ``since_ns`` to ``until_ns`` (open: ``None``) whose
        columns ``equal`` the values given (a tuple: any of them; ``route_or_name``: the
        route or the root span's name; ``True``: a flag set), keyed by the values of ``by``
        (``DIMENSIONS``); with ``step`` ``(origin_ns, step_ns)`` (whole minutes), by time
        bucket first; of ``releases`` only."""
        until_ns = INT64_MAX if until_ns is None else until_ns
        rolled_end = max(since_ns, min(self.rolled_until(), until_ns))
        # A series' time buckets take whole blocks only.
        levels = [grain for grain in LEVELS if not step or (step[1] % grain == 0 and step[0] % grain == 0)]
        groups = {}
        query = (table, by, step, releases, equal)
        self._add_range(groups, since_ns, rolled_end, levels, query)
        if until_ns > rolled_end:
            self._add_spans(groups, rolled_end, until_ns, *query)
        return groups

    def _add_range(self, groups, since_ns, until_ns, levels, query):
        """Add the spans from ``since_ns`` to ``until_ns`` (rolled up): the whole blocks of
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

    def _add_rolled(self, groups, grain_ns, since_ns, until_ns, table, by, step, releases, equal):
        sql = _grouped(table.rolled(), by, step, equal, releases)
        parameters = [*(step or ()), grain_ns, since_ns, until_ns, *_values(equal, releases)]
        for row in self.store._rows(sql, parameters):
            table.add(groups, row, by, step)

    def _add_spans(self, groups, since_ns, until_ns, table, by, step, releases, equal):
        for row in self.span_cells(since_ns, until_ns, by, step, releases, equal, table):
            table.add(groups, row, by, step)

    def span_cells(self, since_ns, until_ns, by, step=None, releases=None, equal=None, table=REQUESTS):
        """``table``'s spans from ``since_ns`` to ``until_ns``, counted per ``by`` and
        duration bucket (``bucket_of``, as the store's ``BUCKET_SQL``) in the database; by
        release, per process, each row's ``release`` then its process's."""
        equal = equal or {}
        by_release = "release" in by or releases is not None
        columns = (*(name for name in by if name != "release"), *(("resource_key",) if by_release else ()))
        sql = _grouped(table.of_spans(self.store.BUCKET_SQL), columns, step, equal, None, table.by_time)
        rows = self.store._rows(sql, [*(step or ()), since_ns, until_ns, *_values(equal, None)])
        if not by_release:
            return rows
        versions = self._versions()
        released = []
        for row in rows:
            row["release"] = versions.get(row["resource_key"], "")
            if releases is None or row["release"] in releases:
                released.append(row)
        return released

    def _versions(self):
        """Each process's release (``service.version``, ``""`` for none), by resource key."""
        return {row["key"]: row["version"] or "" for row in self.store._rows("SELECT key, version FROM resources")}

    def exact_percentiles(self, group, where, parameters, percents):
        """``{"pNN_ns": duration}``: the exact nearest-rank durations of ``group``, whose
        spans are those of ``where`` (with ``parameters``): one seek each, reading only the
        durations of the bucket that holds it. ``None`` where the group is empty; the
        bucket's greatest where the spans no longer hold it (retention deleted some)."""
        seeks, arguments, fallback = [], [], {}
        for percent in percents:
            found = group.ranked(percent) if group.spans else None
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
        late = self._late_to_roll(old_mark, watermark, mark)
        if late is None:
            late, mark = {}, old_mark  # later: until then they stay late (past the old mark)
        minutes = set(late)
        if end == target and (end > watermark or not self.checked_all):
            minutes |= self._miscounted(0 if not self.checked_all else watermark - RECHECK_NS, watermark)
            self.checked_all = True
        ranges = _ranges(minutes) + ([(watermark, end)] if end > watermark else [])
        if not ranges and mark == old_mark:
            return False
        statements = []
        for table in TABLES:
            statements += self._statements(table, ranges, end)
        self.store._write_rollup([*statements, (SET_STATE, [(end, end, mark)])])
        self.store._rolled_up(late)
        return end < target

    def _late_to_roll(self, old_mark, watermark, mark):
        """The late minutes to roll up again now (``{minute: writes}``), or ``None`` for
        later: while late spans keep coming (a sender sending out of time order, as a
        backfill does), at most every ``LATE_INTERVAL_S``; once they stop, at once."""
        late = self.store._late_minutes(old_mark, watermark, mark)
        if not late:
            return late
        settled = late == self.late_seen  # none came since the last round
        self.late_seen = late
        if not settled and time.monotonic() - self.late_rolled_at < LATE_INTERVAL_S:
            return None
        self.late_rolled_at, self.late_seen = time.monotonic(), {}
        return late

    def _statements(self, table, ranges, rolled_ns):
        """``(sql, rows)`` that replace ``table``'s rows of ``ranges`` (minutes) with the
        spans', and those of each longer block they reach that ends by ``rolled_ns`` (the
        table itself for ``sql``: insert the rows, as the store does it best). The
        spans are counted in the database, outside the transaction that writes (SQLite's
        one writer waits for it only to write the counts)."""
        sql, rows = table.minutes_of_spans(self.store.BUCKET_SQL), []
        for low, high in ranges:
            rows += [(MINUTE_NS, row["minute"], *(row[name] for name in table.columns[2:]))
                     for row in self.store._rows(sql, [low, high])]
        statements = [(table.delete(), [(MINUTE_NS, low, high) for low, high in ranges]), (table, rows)]
        for grain, finer in reversed(list(zip(LEVELS, LEVELS[1:]))):
            blocks = _blocks(ranges, grain, rolled_ns)
            statements += [(table.delete(), [(grain, low, high) for low, high in blocks]),
                           (table.coarser(), [(grain, grain, grain, finer, low, high) for low, high in blocks])]
        return statements

    def _miscounted(self, since_ns, until_ns):
        """The minutes from ``since_ns`` to ``until_ns`` whose spans a rollup table does not count."""
        if until_ns <= since_ns:
            return set()
        minutes = set()
        for table in TABLES:
            of_spans, rolled = table.minute_counts()
            spans = {row["minute"]: row["spans"] for row in self.store._rows(of_spans, [since_ns, until_ns])}
            counted = {row["minute"]: row["spans"] for row in self.store._rows(rolled, [since_ns, until_ns])}
            minutes |= {minute for minute in set(spans) | set(counted)
                        if int(spans.get(minute, 0)) != int(counted.get(minute, 0))}
        return minutes


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


def aligned_buckets(since_ns, until_ns, step_ns):
    """``(origin_ns, count)``: as many buckets of ``step_ns`` (whole minutes) as it takes to
    cover ``since_ns`` to ``until_ns``, the last ending where the longest block of the
    rollup that divides the step (a minute, ten, an hour) that ``until_ns`` is in ends, so
    that each bucket is whole blocks of the rollup."""
    count = -(-(until_ns - since_ns) // step_ns)
    block = next(grain for grain in LEVELS if step_ns % grain == 0)
    return ceil_minute(until_ns, block) - count * step_ns, count


def _grouped(sql, by, step, equal, releases, unindexed=()):
    """``sql`` (a table's ``rolled`` or ``of_spans``) grouped by the time bucket of
    ``step``, if any, and ``by``, with the filters of ``equal`` (those of ``unindexed`` by
    an expression, which no index serves) and ``releases``: its parameters are ``step``'s,
    the table's, then ``_values``."""
    dimensions = names = ""
    if step:
        dimensions, names = "(start_ns - ?) / ? AS time_bucket, ", "time_bucket, "
    dimensions += "".join(f"{DIMENSIONS[name]} AS {name}, " for name in by)
    names += "".join(f"{name}, " for name in by)
    filters = []
    for name, value in equal.items():
        column = f"{name} || ''" if name in unindexed else name
        if name == "route_or_name":
            filters.append("(route = ? OR name = ?)")
        elif value is True:  # a flag, as the partial indexes on it say it
            filters.append(name)
        elif isinstance(value, tuple):
            filters.append(f"{column} IN ({', '.join('?' * len(value))})" if value else "1 = 0")
        else:
            filters.append(f"{name} IS NULL" if value is None else f"{column} = ?")
    if releases is not None:
        filters.append(f"release IN ({', '.join('?' * len(releases))})")
    return sql.format(dimensions=dimensions, names=names, filters="".join(f" AND {f}" for f in filters))


def _values(equal, releases):
    """The parameters of ``_grouped``'s filters."""
    values = []
    for name, value in equal.items():
        if name == "route_or_name":
            values += [value, value]
        elif isinstance(value, tuple):
            values += list(value)
        elif value is not None and value is not True:
            values.append(value)
    return values + list(releases or ())
