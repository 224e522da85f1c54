"""A store on PostgreSQL, for several collectors on one database behind a load balancer.

Each process keeps a small pool of connections (``psycopg_pool``), each checked before
use, so a connection the server dropped is replaced rather than failing a request. A
batch is one transaction, its rows COPYed straight into their tables; spans that are
stored already (a batch the sender retried after a lost reply) make that COPY fail, and
they go through a temporary table merged with ``ON CONFLICT DO NOTHING`` instead, so no
span is stored twice. The
rows that several collectors update at once (a process's resource row, an error group)
are written last and in key order: their row locks are held for the shortest time and
always taken in the same order, so concurrent batches neither queue behind nor deadlock
on one another.

Spans, logs and metric points are partitioned by hour (``postgres_schema``). Partitions
are created a couple of hours ahead by retention, and on demand for a batch that
reaches an hour within the retention age that has none; retention drops whole
partitions, so deleting a day costs no more than deleting an hour. What falls outside
(a clock far off) goes to each table's DEFAULT partition, whose rows move into their
hour's partition if it is made later. Schema migrations and partition changes take an
advisory lock: any number of collectors may start, or run retention, at once.

The size limit holds between retention rounds too: a maintenance thread watches the
tables many times a second (``_Maintainer``), and when they grow past most of the limit
it deletes the oldest share of the data by time, whole partitions where it can and rows
of the current hour's partition where it cannot (a limit smaller than an hour's data),
then VACUUMs, so that the next rows reuse that space rather than grow the files. Under
sustained ingest a 20 MB limit keeps the tables near 20 MB
(tests/collector/test_retention_bounds.py).

Every error leaves as the store's own (``store.StoreError``): a server that is gone, a
lock timeout or a pool with no free connection is ``StoreUnavailable`` (503, the sender
retries), a value PostgreSQL refuses is ``StoreRejected`` (400).
"""
import calendar
import json
import logging
import re
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import replace
from functools import lru_cache
from operator import itemgetter
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from .error_states import RELEASE_FIRST_SEEN, REOPEN, SET_STATE, group_state, reopens, state_parameters
from .model import INT64_MAX, LOG_COLUMNS, METRIC_COLUMNS, PROFILE_COLUMNS, SPAN_COLUMNS
from .postgres_schema import MIGRATIONS, PARTITIONED
from .queries import Queries
from .rollup import LOG_RATIO, MINUTE_NS, TABLES as ROLLUP_TABLES, Rollup, Table
from .search import TAG_COLUMNS, tag_rows
from .store import SIZE_LOW_WATER, Maintainer, SchemaTooNew, StoreError, StoreRejected, StoreUnavailable

logger = logging.getLogger("spyglass.collector")

NS = 1_000_000_000
HOUR_NS = 3600 * NS
#: Partitions exist from the retention age up to this many hours ahead of now.
HOURS_AHEAD = 2
#: Keys of the advisory locks (any 64-bit numbers other applications are unlikely to use).
SCHEMA_LOCK, PARTITION_LOCK, ROLLUP_LOCK = 0x7370_7967_6C61_7301, 0x7370_7967_6C61_7302, 0x7370_7967_6C61_7303
#: A process's resource row is refreshed at most this often (its ``last_seen_ns``).
RESOURCE_REFRESH_NS = NS
MAX_RESOURCES_REMEMBERED = 10_000
DDL_LOCK_TIMEOUT = "5s"
POOL_SIZE = 4
POOL_TIMEOUT = 3.0  # seconds a request waits for a connection before answering 503
#: Rollup rows written (rows deleted and inserted) between VACUUMs of the rollup tables.
ROLLUP_VACUUM_ROWS = 50_000
#: Memory each sort or hash of a roll-up may take.
ROLLUP_WORK_MEM = "64MB"
#: Seconds between the maintainer's measures past SIZE_HIGH_WATER while rows arrive (fast
#: ingest fills the rest of the limit in a fraction of a second).
FAST_POLL = 0.02
#: Tables outside the time partitions, that retention deletes rows from.
UNPARTITIONED = ("resources", "error_groups", "error_events", "profile_samples", "traces_by_tag",
                 "request_rollup", "call_rollup")
#: The time column of each unpartitioned table retention deletes by time.
_TIME_COLUMNS = {"error_events": "time_ns", "profile_samples": "time_ns", "traces_by_tag": "time_ns",
                 "resources": "last_seen_ns", "request_rollup": "start_ns", "call_rollup": "start_ns"}

_ROOT_AT, _CALL_KEY_AT, _START_AT = (SPAN_COLUMNS.index(name) for name in ("is_root", "call_key", "start_ns"))
_start_of = itemgetter(_START_AT)
_TIME_INDEX = {"spans": SPAN_COLUMNS.index("start_ns"), "logs": LOG_COLUMNS.index("time_ns"),
               "metric_points": METRIC_COLUMNS.index("time_ns")}
_FLOAT_INDEXES = (METRIC_COLUMNS.index("value"), METRIC_COLUMNS.index("sum"))
_COPY = {
    "spans": f"COPY spans ({', '.join(SPAN_COLUMNS)}) FROM STDIN",
    "spans_incoming": f"COPY spans_incoming ({', '.join(SPAN_COLUMNS)}) FROM STDIN",
    "logs": f"COPY logs ({', '.join(LOG_COLUMNS)}) FROM STDIN",
    "metric_points": f"COPY metric_points ({', '.join(METRIC_COLUMNS)}) FROM STDIN",
    "profile_samples": f"COPY profile_samples ({', '.join(PROFILE_COLUMNS)}) FROM STDIN",
    "traces_by_tag": f"COPY traces_by_tag ({', '.join(TAG_COLUMNS)}) FROM STDIN",
}
_MERGE_SPANS = (f"INSERT INTO spans ({', '.join(SPAN_COLUMNS)}) SELECT {', '.join(SPAN_COLUMNS)} "
                f"FROM spans_incoming ON CONFLICT DO NOTHING")
_UPSERT_RESOURCE = """
    INSERT INTO resources AS r (key, service, instance, attributes, first_seen_ns, last_seen_ns, version)
    VALUES (%s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (key) DO UPDATE SET last_seen_ns = greatest(r.last_seen_ns, excluded.last_seen_ns)
"""
_UPSERT_ERROR_GROUP = """
    INSERT INTO error_groups AS g (service, fingerprint, type, message, culprit, first_seen_ns,
                                   last_seen_ns, count)
    VALUES (%s, %s, %s, %s, %s, %s, %s, 1)
    ON CONFLICT (service, fingerprint) DO UPDATE SET
        count = g.count + 1,
        first_seen_ns = least(g.first_seen_ns, excluded.first_seen_ns),
        type = CASE WHEN excluded.last_seen_ns >= g.last_seen_ns THEN excluded.type ELSE g.type END,
        message = CASE WHEN excluded.last_seen_ns >= g.last_seen_ns THEN excluded.message ELSE g.message END,
        culprit = CASE WHEN excluded.last_seen_ns >= g.last_seen_ns THEN excluded.culprit ELSE g.culprit END,
        last_seen_ns = greatest(g.last_seen_ns, excluded.last_seen_ns)
    RETURNING id, last_seen_ns, state, state_changed_ns, resolved_release
"""
_INSERT_ERROR_EVENT = """
    INSERT INTO error_events (group_id, time_ns, resource_key, service, trace_id, span_id, route,
                              user_id, handled, source, event, release)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id
"""


#: What a second try with the batch's strings scrubbed (``_scrubbed``) may get past.
_SCRUBBABLE = (UnicodeEncodeError, psycopg.DataError, psycopg.errors.ProgramLimitExceeded)


@lru_cache(maxsize=256)
def _dialect(sql):
    """The shared queries' ``?`` placeholders as psycopg's ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s")


@contextmanager
def _store_errors():
    """psycopg's exceptions as the store's own."""
    try:
        yield
    except (psycopg.errors.NumericValueOutOfRange, OverflowError) as exc:
        raise StoreRejected("a number is outside the int64 range") from exc
    except (psycopg.DataError, psycopg.IntegrityError, psycopg.errors.ProgramLimitExceeded,
            UnicodeEncodeError) as exc:
        raise StoreRejected(f"PostgreSQL refused a value: {str(exc).strip()}") from exc
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:  # gone, restarting, lock timeout, pool empty
        raise StoreUnavailable(f"PostgreSQL: {str(exc).strip()}") from exc
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL: {str(exc).strip()}") from exc


def redacted(url):
    """``url`` without its password, for logs and the UI."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc}"))


#: Longest string kept in an indexed column: a B-tree entry must fit in a third of a page.
MAX_INDEXED_CHARS = 1000
_INDEXED = {
    "spans": {SPAN_COLUMNS.index(name) for name in ("trace_id", "span_id", "service")},
    "logs": {LOG_COLUMNS.index("trace_id")},
    "metrics": {METRIC_COLUMNS.index(name) for name in ("name", "service")},
    "profiles": {PROFILE_COLUMNS.index(name) for name in ("trace_id", "service")},
    "errors": {"service", "fingerprint", "trace_id"},
}


def _scrub(value, indexed=False):
    """A string PostgreSQL can hold: no NUL, no lone surrogate, and short enough to index."""
    if not isinstance(value, str):
        return value
    value = value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return value[:MAX_INDEXED_CHARS - 1] + "…" if indexed and len(value) > MAX_INDEXED_CHARS else value


def _scrubbed(batch):
    for name in ("spans", "logs", "metrics", "profiles"):
        indexed = _INDEXED[name]
        setattr(batch, name, [tuple(_scrub(value, i in indexed) for i, value in enumerate(row))
                              for row in getattr(batch, name)])
    for error in batch.errors:
        for name, value in vars(error).items():
            setattr(error, name, _scrub(value, name in _INDEXED["errors"]))
    batch.resources = {key: replace(r, service=_scrub(r.service, True), instance=_scrub(r.instance),
                                    attributes=_scrub(r.attributes), version=_scrub(r.version, True))
                       for key, r in batch.resources.items()}
    return batch


def _hour_name(table, hour):
    return f"{table}_{time.strftime('%Y%m%d%H', time.gmtime(hour * 3600))}"


def _hour_of(name, table):
    match = re.fullmatch(rf"{table}_(\d{{10}})", name)
    return calendar.timegm(time.strptime(match.group(1), "%Y%m%d%H")) // 3600 if match else None


class PostgresStore(Queries):
    """``store.Store`` on a PostgreSQL database, named by a ``postgresql://`` URL."""

    CONTAINS = "strpos({column}, ?) > 0"  # search.SearchQueries: SQLite's instr()
    #: rollup.bucket_of: the same C log() of the same double, divided by the same double.
    BUCKET_SQL = (f"CASE WHEN duration_ns > 1 THEN floor(ln(duration_ns::float8) / '{LOG_RATIO!r}'::float8)::bigint "
                  f"ELSE 0 END")

    def __init__(self, url, retention_seconds=7 * 86400, retention_bytes=1 << 30, pool_size=POOL_SIZE,
                 maintain=True):
        self.url = url
        self.retention_seconds = retention_seconds
        self.retention_bytes = retention_bytes
        self._hours = set()  # hours whose partitions exist, as far as this process knows
        self._hours_lock = threading.Lock()
        self._resources_written = {}  # resource key -> when this process last wrote its row
        self.rollup = Rollup(self)
        self.rows_written = 0  # spans, logs and metric points, since start
        self.room = threading.Event()  # cleared while the maintainer shrinks a store past its limit
        self.room.set()
        self._rolling_to = 0  # the minutes before it are rolled up, or being
        self._late = {}  # minute -> writes of requests and calls behind _rolling_to, since it was rolled up
        # What an earlier process left of the rollup tables is not known: vacuumed after the first roll-up.
        self._rollup_rows_written = ROLLUP_VACUUM_ROWS
        with _store_errors():
            with psycopg.connect(url, connect_timeout=10, autocommit=True) as connection:
                self.schema_version = self._migrate(connection)
            self._pool = ConnectionPool(
                url, min_size=1, max_size=pool_size, timeout=POOL_TIMEOUT, name="spyglass",
                kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": 10},
                configure=self._configure, check=ConnectionPool.check_connection, open=False)
            self._pool.open(wait=True, timeout=30)
        self.apply_retention(partitions_only=True)
        self._maintainer = _Maintainer(self) if maintain else None
        if self._maintainer:
            self._maintainer.start()

    def describe(self):
        return {"backend": "postgresql", "location": redacted(self.url), "schema_version": self.schema_version,
                "retention_seconds": self.retention_seconds, "retention_bytes": self.retention_bytes}

    def close(self):
        if self._maintainer:
            self._maintainer.stop()
        self._pool.close()

    # -- connections and schema ----------------------------------------------------------

    @staticmethod
    def _configure(connection):
        # JIT compiles a query for a second when the planner guesses it large (after a bulk
        # load, before statistics); the UI's queries read little and answer in milliseconds.
        connection.execute("SET jit = off")
        # Per session: COPY lands here, then one INSERT … ON CONFLICT merges it.
        connection.execute("CREATE TEMP TABLE IF NOT EXISTS spans_incoming (LIKE spans INCLUDING DEFAULTS) "
                           "ON COMMIT DELETE ROWS")

    @contextmanager
    def _connection(self):
        with _store_errors(), self._pool.connection() as connection:
            yield connection

    @staticmethod
    def _migrate(connection):
        """Bring the schema up to date, one collector at a time; its version."""
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            connection.execute("CREATE TABLE IF NOT EXISTS spyglass_schema (version INTEGER NOT NULL)")
            row = connection.execute("SELECT version FROM spyglass_schema").fetchone()
            version = row[0] if row else 0
            if version > len(MIGRATIONS):
                raise SchemaTooNew(f"the database has schema version {version}; this spyglass knows up to "
                                   f"{len(MIGRATIONS)}: upgrade spyglass")
            for script in MIGRATIONS[version:]:
                connection.execute(script)
            if row is None:
                connection.execute("INSERT INTO spyglass_schema (version) VALUES (%s)", (len(MIGRATIONS),))
            else:
                connection.execute("UPDATE spyglass_schema SET version = %s", (len(MIGRATIONS),))
        return len(MIGRATIONS)

    # -- writing -------------------------------------------------------------------------

    def write(self, batch):
        self.room.wait(POOL_TIMEOUT)
        self._ensure_partitions(batch)
        try:
            self._write(batch)
        except StoreRejected as exc:
            if not isinstance(exc.__cause__, _SCRUBBABLE) or \
                    isinstance(exc.__cause__, psycopg.errors.NumericValueOutOfRange):
                raise
            # A NUL, a lone surrogate, an id or a name too long to index: store the rest as it is.
            self._write(_scrubbed(batch))
        self._note_late(batch)
        # For the maintainer: space a shrink freed is refilled when as many rows came since
        # (not atomic across threads: a count off by a few rows does no harm)
        self.rows_written += len(batch.spans) + len(batch.logs) + len(batch.metrics)

    def _write(self, batch):
        now_ns = time.time_ns()
        resources = sorted((r.key, r.service, r.instance, r.attributes, now_ns, now_ns, r.version)
                           for r in batch.resources.values()
                           if now_ns - self._resources_written.get(r.key, 0) > RESOURCE_REFRESH_NS)
        metrics = [tuple(None if i in _FLOAT_INDEXES and v != v else v for i, v in enumerate(row))
                   for row in batch.metrics]  # NaN as NULL, as SQLite stores it
        with self._connection() as connection, connection.transaction(), connection.cursor() as cursor:
            if batch.spans:
                self._write_spans(connection, cursor, batch.spans)
                self._copy(cursor, "traces_by_tag", tag_rows(batch))
            for table, rows in (("logs", batch.logs), ("metric_points", metrics),
                                ("profile_samples", batch.profiles)):
                if rows:
                    self._copy(cursor, table, rows)
            for error in sorted(batch.errors, key=lambda e: (e.service, e.fingerprint)):
                self._write_error(cursor, error)
            if resources:
                cursor.executemany(_UPSERT_RESOURCE, resources)
        if len(self._resources_written) > MAX_RESOURCES_REMEMBERED:  # senders that never repeat themselves
            self._resources_written.clear()
        for key, *_ in resources:
            self._resources_written[key] = now_ns

    @staticmethod
    def _copy(cursor, table, rows):
        with cursor.copy(_COPY[table]) as copy:
            for row in rows:
                copy.write_row(row)

    def _write_spans(self, connection, cursor, spans):
        """COPY the spans in; if some are there already (a batch sent again after its reply
        was lost), COPY them aside and merge them instead. Half PostgreSQL's work of always
        merging, for the batches that are new, which are nearly all of them."""
        try:
            with connection.transaction():  # a savepoint: a duplicate undoes this COPY only
                self._copy(cursor, "spans", spans)
        except psycopg.errors.UniqueViolation:
            self._copy(cursor, "spans_incoming", spans)
            cursor.execute(_MERGE_SPANS)

    @staticmethod
    def _write_error(cursor, error):
        group = cursor.execute(_UPSERT_ERROR_GROUP, (
            error.service, error.fingerprint, error.type, error.message, error.culprit,
            error.time_ns, error.time_ns)).fetchone()
        group_id = group["id"]
        event_id = cursor.execute(_INSERT_ERROR_EVENT, (
            group_id, error.time_ns, error.resource_key, error.service, error.trace_id, error.span_id,
            error.route, error.user_id, error.handled, error.source,
            json.dumps(error.event, default=str), error.release)).fetchone()["id"]
        if error.time_ns >= group["last_seen_ns"]:
            cursor.execute("UPDATE error_groups SET latest_event_id = %s WHERE id = %s", (event_id, group_id))

        def first_seen(release):
            return cursor.execute(_dialect(RELEASE_FIRST_SEEN), (error.service, release)).fetchone()["first_seen_ns"]

        if reopens(group["state"], group["state_changed_ns"], group["resolved_release"], error, first_seen):
            cursor.execute(_dialect(REOPEN), (error.time_ns, group_id))

    def set_error_state(self, group_id, state, now_ns=None):
        """Set a group's state (``error_states.STATES``); the group as it is then, or
        ``None`` if there is no such group."""
        if not 0 < int(group_id) <= INT64_MAX:
            return None
        with self._connection() as connection:
            row = connection.execute(_dialect(SET_STATE), state_parameters(
                group_id, state, time.time_ns() if now_ns is None else now_ns)).fetchone()
        return group_state(dict(row)) if row else None

    # -- the rollup (rollup.py) ------------------------------------------------------------

    def _note_late(self, batch):
        """Remember the minutes of the requests and calls just written that the rollup has passed
        (``rollup.ROLLED_SPANS``)."""
        behind = self._rolling_to
        try:  # nearly every batch is newer than the rollup: one pass in C tells
            if not behind or not batch.spans or min(map(_start_of, batch.spans)) >= behind:
                return
        except TypeError:  # a start time that is not a number: look at each
            pass
        for row in batch.spans:
            start_ns = row[_START_AT]
            if (row[_ROOT_AT] or row[_CALL_KEY_AT] is not None) and type(start_ns) is int and start_ns < behind:
                minute = start_ns // MINUTE_NS
                self._late[minute] = self._late.get(minute, 0) + 1

    def _rollup_mark(self, rolling_to_ns):
        """Announce that the minutes before ``rolling_to_ns`` are being rolled up: requests
        this process writes for them from now on are late. PostgreSQL has no insert order to
        mark (what other collectors write late is found by the rollup's recount)."""
        if rolling_to_ns is not None:
            self._rolling_to = max(self._rolling_to, rolling_to_ns)
        return 0

    def _late_minutes(self, mark, watermark_ns, until_mark=None):
        """The minutes before ``watermark_ns`` this process wrote requests or calls for after
        they were rolled up, with how many writes (``_rolled_up`` forgets those)."""
        return {minute: writes for minute, writes in list(self._late.items()) if minute * MINUTE_NS < watermark_ns}

    def _rolled_up(self, late):
        """Forget the late minutes of ``late`` that no write came for since."""
        for minute, writes in late.items():
            if self._late.get(minute) == writes:
                self._late.pop(minute, None)

    def _write_rollup(self, statements):
        """Run each ``(sql, rows)`` of ``statements`` over its rows (a ``rollup.Table`` for
        ``sql``: COPY them into it), in one transaction, one collector at a time (each
        replaces what it rolls up: a second one's is the same).
        Every ``ROLLUP_VACUUM_ROWS`` rows written, VACUUM ANALYZE the rollup tables: minutes
        rolled up again (late spans, a backfill) leave their old rows dead, and a summary
        that reads through a million dead rows takes a second (autovacuum may be off)."""
        with self._connection() as connection, connection.transaction(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (ROLLUP_LOCK,))
            # Rolling up an hour groups a million spans: in memory, not in sorts spilled to disk.
            cursor.execute(f"SET LOCAL work_mem = '{ROLLUP_WORK_MEM}'")
            for sql, rows in statements:
                if isinstance(sql, Table):
                    with cursor.copy(f"COPY {sql.name} ({', '.join(sql.columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                    self._rollup_rows_written += len(rows)
                elif rows:
                    cursor.executemany(_dialect(sql), rows)
                    self._rollup_rows_written += max(cursor.rowcount, 0)
        if self._rollup_rows_written >= ROLLUP_VACUUM_ROWS:
            self._rollup_rows_written = 0
            self._vacuum([table.name for table in ROLLUP_TABLES], analyze=True)

    # -- partitions ----------------------------------------------------------------------

    def _wanted_hours(self, now_ns):
        """The hours that should have partitions: from the retention age to a little ahead."""
        return range((now_ns - int(self.retention_seconds * NS)) // HOUR_NS, now_ns // HOUR_NS + HOURS_AHEAD + 1)

    def _ensure_partitions(self, batch):
        """Make the partitions of the hours this batch reaches, within the retention age, if
        they are missing; rows of other hours go to the DEFAULT partitions."""
        hours = set()
        for table, rows in (("spans", batch.spans), ("logs", batch.logs), ("metric_points", batch.metrics)):
            index = _TIME_INDEX[table]
            hours.update(row[index] // HOUR_NS for row in rows if type(row[index]) is int)
        wanted = self._wanted_hours(time.time_ns())
        missing = {hour for hour in hours - self._hours if hour in wanted}
        if not missing:
            return
        try:
            with self._connection() as connection, connection.transaction(), connection.cursor() as cursor:
                self._lock_partitions(cursor, wait=True)
                self._create_partitions(cursor, missing)
        except StoreError as exc:  # the rows wait in the DEFAULT partitions meanwhile
            logger.warning("could not create partitions: %s", exc)

    @staticmethod
    def _lock_partitions(cursor, wait):
        """Take the partition lock for this transaction; ``False`` if another collector holds it."""
        cursor.execute(f"SET LOCAL lock_timeout = '{DDL_LOCK_TIMEOUT}'")
        if wait:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
            return True
        return cursor.execute("SELECT pg_try_advisory_xact_lock(%s) AS locked", (PARTITION_LOCK,)).fetchone()["locked"]

    def _existing_hours(self, cursor):
        """Hour -> partition names per table, from the catalog."""
        hours = defaultdict(dict)
        for table, _ in PARTITIONED:
            for row in cursor.execute("SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
                                      "WHERE i.inhparent = %s::regclass", (table,)):
                hour = _hour_of(row["relname"], table)
                if hour is not None:
                    hours[hour][table] = row["relname"]
        with self._hours_lock:
            self._hours = {hour for hour, tables in hours.items() if len(tables) == len(PARTITIONED)}
        return hours

    def _create_partitions(self, cursor, hours):
        existing = self._existing_hours(cursor)
        for hour in sorted(hours):
            for table, column in PARTITIONED:
                if table in existing.get(hour, {}):
                    continue
                name, low, high = _hour_name(table, hour), hour * HOUR_NS, (hour + 1) * HOUR_NS
                # Rows of this hour that came before its partition wait in DEFAULT: move them in,
                # or attaching it would fail.
                cursor.execute(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)")
                cursor.execute(f"WITH moved AS (DELETE FROM {table}_default WHERE {column} >= %s AND {column} < %s "
                               f"RETURNING *) INSERT INTO {name} SELECT * FROM moved", (low, high))
                cursor.execute(f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ({low}) TO ({high})")
        with self._hours_lock:
            self._hours |= set(hours)

    def _drop_hour(self, cursor, hour, tables):
        for name in tables.values():
            cursor.execute(f"DROP TABLE {name}")
        with self._hours_lock:
            self._hours.discard(hour)

    # -- retention -----------------------------------------------------------------------

    def used_bytes(self, cursor=None, from_hour=None):
        """Bytes the store's tables and indexes take on disk; with ``from_hour``, only what
        can still grow: the partitions of that hour on, the DEFAULT ones and the others."""
        if from_hour is None:
            partitions = " UNION ALL ".join(f"SELECT relid FROM pg_partition_tree('{table}')"
                                            for table, _ in PARTITIONED)
        else:  # a list of names instead: measuring every partition of a week takes a third of a second
            names = [f"{table}_default" for table, _ in PARTITIONED] + [
                _hour_name(table, hour) for table, _ in PARTITIONED
                for hour in range(from_hour, time.time_ns() // HOUR_NS + HOURS_AHEAD + 1)]
            partitions = "SELECT to_regclass(name) FROM unnest(ARRAY[%s]) AS name" % ", ".join(
                f"'{name}'" for name in names)
        sql = (f"SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint AS size FROM ({partitions} "
               f"UNION ALL SELECT unnest(ARRAY{list(UNPARTITIONED)}::regclass[])) AS r (relid)")
        if cursor is not None:
            return cursor.execute(sql).fetchone()["size"]
        return self._rows(sql)[0]["size"]

    def apply_retention(self, now_ns=None, partitions_only=False):
        """Make the next hours' partitions; drop those past the age limit and delete what is
        past it from the DEFAULT partitions and the other tables; then, when over the size
        limit, ``shrink``. One collector at a time: the others skip their round."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        with self._connection() as connection, connection.transaction(), connection.cursor() as cursor:
            if not self._lock_partitions(cursor, wait=False):
                return {}
            wanted = self._wanted_hours(now_ns)
            self._create_partitions(cursor, range(max(wanted.start, now_ns // HOUR_NS - 1), wanted.stop))
            if partitions_only:
                return {}
            deleted, emptied = self._delete_before(cursor, now_ns - int(self.retention_seconds * NS))
            over = self.used_bytes(cursor) > self.retention_bytes
        self._vacuum(emptied)
        if over:
            for table, count in self.shrink(now_ns).items():
                deleted[table] = deleted.get(table, 0) + count
        return deleted

    def shrink(self, now_ns=None, share=SIZE_LOW_WATER):
        """Delete the oldest data, assumed to have come at an even rate since the oldest
        request kept, down to about ``share`` of the size limit, then VACUUM: PostgreSQL
        keeps the files, but the next rows fill the space instead of growing them."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        age_cutoff_ns = now_ns - int(self.retention_seconds * NS)
        with self._connection() as connection, connection.transaction(), connection.cursor() as cursor:
            if not self._lock_partitions(cursor, wait=False):
                return {}
            used = self.used_bytes(cursor)
            if used <= self.retention_bytes * share:
                return {}
            oldest = cursor.execute("SELECT min(start_ns) AS oldest FROM spans WHERE is_root AND start_ns >= %s",
                                    (age_cutoff_ns,)).fetchone()["oldest"]
            if oldest is None:  # logs and metrics only: from the oldest hour kept
                oldest = min(self._existing_hours(cursor), default=now_ns // HOUR_NS) * HOUR_NS
            oldest = max(oldest, age_cutoff_ns)
            cutoff_ns = oldest + int((now_ns - oldest) * (1 - self.retention_bytes * share / used))
            deleted, emptied = self._delete_before(cursor, cutoff_ns, within_partitions=True)
        self._vacuum(emptied)
        return deleted

    def _delete_before(self, cursor, cutoff_ns, within_partitions=False):
        """Drop the partitions that end by ``cutoff_ns``, and delete the rows before it from
        the DEFAULT partitions (``within_partitions``: from the one it falls in too, which
        means reading all of it) and the other tables; the counts, and the tables rows
        were deleted from."""
        deleted, emptied = defaultdict(int), set()
        hours = self._existing_hours(cursor)
        for hour in sorted(hours):
            if (hour + 1) * HOUR_NS <= cutoff_ns:
                self._drop_hour(cursor, hour, hours.pop(hour))
                deleted["partitions"] += 1
        for table, column in PARTITIONED:
            target = table if within_partitions else f"{table}_default"
            count = cursor.execute(f"DELETE FROM {target} WHERE {column} < %s", (cutoff_ns,)).rowcount
            if count:
                deleted[table] += count
                emptied.add(f"{table}_default")
                if within_partitions:
                    emptied.update(tables[table] for hour, tables in hours.items()
                                   if hour * HOUR_NS < cutoff_ns and table in tables)
        for table, column in _TIME_COLUMNS.items():
            deleted[table] = cursor.execute(f"DELETE FROM {table} WHERE {column} < %s", (cutoff_ns,)).rowcount
        deleted["error_groups"] = cursor.execute(
            "DELETE FROM error_groups AS g WHERE NOT EXISTS "
            "(SELECT 1 FROM error_events WHERE group_id = g.id)").rowcount
        emptied.update(table for table in UNPARTITIONED if deleted[table])
        return dict(deleted), sorted(emptied)

    def _vacuum(self, tables, analyze=False):
        """VACUUM ``tables``, so that new rows reuse the space of those deleted (autovacuum
        may be off, or come much later); with ``analyze``, their statistics renewed too."""
        if tables:
            with self._connection() as connection:  # autocommit: VACUUM runs outside a transaction
                connection.execute(f"VACUUM {'ANALYZE ' if analyze else ''}{', '.join(tables)}")

    # -- reading -------------------------------------------------------------------------

    def _rows(self, sql, parameters=()):
        with self._connection() as connection:
            return connection.execute(_dialect(sql), parameters).fetchall()


class _Maintainer(Maintainer):
    """Keeps the tables within the size limit between retention rounds, off the request path.

    Every ``poll`` seconds it measures what can grow (the recent partitions and the
    unpartitioned tables; the older partitions are measured every ``interval`` seconds,
    as measuring a week of them takes a third of a second). Past ``SIZE_HIGH_WATER`` of the
    limit the store shrinks once the space its last ``shrink`` freed is refilled: the files
    grew past their size after it, or as many rows came as it deleted. (VACUUM leaves the
    files as large, so their size alone tells late: under fast ingest, after they grew.)
    Past it, while rows arrive, it measures every ``FAST_POLL`` seconds, and writers wait
    while it shrinks: ingest as fast as the receiver takes it fills the rest of the limit in
    a fraction of a second.
    """

    older, from_hour, measured_at, settled = 0, None, 0.0, 0
    rows_at_shrink, rows_freed, rows_seen = 0, float("inf"), 0

    def round(self):
        store, hour = self.store, time.time_ns() // HOUR_NS - 1
        if hour != self.from_hour or time.monotonic() - self.measured_at > self.interval:
            self.older = store.used_bytes() - store.used_bytes(from_hour=hour)
            self.from_hour, self.measured_at = hour, time.monotonic()
        used = self.older + store.used_bytes(from_hour=hour)
        refilled = store.rows_written - self.rows_at_shrink >= self.rows_freed
        arriving, self.rows_seen = store.rows_written != self.rows_seen, store.rows_written
        self.poll = FAST_POLL if arriving and used > self.high_water else Maintainer.poll
        if used > self.high_water and (used > self.settled or refilled):
            store.room.clear()  # writers wait for the room being made (tens of ms)
            try:
                deleted = store.shrink()
            finally:
                store.room.set()
            freed = sum(deleted.get(table, 0) for table, _ in PARTITIONED)
            self.rows_at_shrink, self.rows_freed = store.rows_written, freed or float("inf")
            self.settled, self.measured_at = store.used_bytes(), 0.0
