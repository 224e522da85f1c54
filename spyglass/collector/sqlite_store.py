"""The default store: one SQLite file in WAL mode.

One writer connection, behind a lock, takes each batch in one ``executemany`` per table
inside one transaction; WAL lets any number of readers (a small pool of connections) run
beside it. Several collector processes may share the file: a lock file queues their
writes and ``busy_timeout`` makes them wait their turn instead of failing.

The files on disk stay near the size limit under any load: a maintenance thread watches
the database and its WAL many times a second and deletes the oldest data as soon as the
database nears the limit; a writer that finds the WAL past its share of the limit
checkpoints and truncates it (see ``_Maintainer``). Under sustained ingest a 20 MB limit
keeps the database and its WAL under 24 MB together (tests/collector/test_retention_bounds.py).
"""
import json
import math
import os

try:
    import fcntl
except ImportError:  # Windows: SQLite's busy handler alone serializes the writers
    fcntl = None
import queue
import sqlite3
import threading
import time
from collections import defaultdict
from contextlib import contextmanager

from .error_states import RELEASE_FIRST_SEEN, REOPEN, SET_STATE, group_state, reopens, state_parameters
from .model import INT64_MAX, LOG_COLUMNS, METRIC_COLUMNS, PROFILE_COLUMNS, SPAN_COLUMNS
from .queries import Queries
from .rollup import LOG_RATIO, MINUTE_NS, ROLLED_SPANS, Rollup, Table
from .search import TAG_COLUMNS, tag_rows
from .sqlite_schema import MIGRATIONS
from .store import SIZE_LOW_WATER, Maintainer, SchemaTooNew, StoreError, StoreRejected, StoreUnavailable

NS = 1_000_000_000
_BUSY_TIMEOUT_MS = 10_000
#: A checkpoint that holds writers off waits this long for a reader, then gives up for now.
_CHECKPOINT_BUSY_TIMEOUT_MS = 1_000
_TIMED_TABLES = (("spans", "start_ns"), ("logs", "time_ns"), ("metric_points", "time_ns"),
                 ("error_events", "time_ns"), ("profile_samples", "time_ns"), ("traces_by_tag", "time_ns"),
                 ("request_rollup", "start_ns"), ("call_rollup", "start_ns"))
#: The WAL is checkpointed and truncated before it passes this share of the size limit.
WAL_SHARE = 1 / 8
MAX_WAL_BYTES = 64 << 20


def _insert(table, columns, verb="INSERT"):
    return f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


_INSERT_SPANS = _insert("spans", SPAN_COLUMNS, "INSERT OR REPLACE")
_INSERT_LOGS = _insert("logs", LOG_COLUMNS)
_INSERT_METRICS = _insert("metric_points", METRIC_COLUMNS)
_INSERT_PROFILES = _insert("profile_samples", PROFILE_COLUMNS)
_INSERT_TAGS = _insert("traces_by_tag", TAG_COLUMNS)
_UPSERT_RESOURCE = """
    INSERT INTO resources (key, service, instance, attributes, first_seen_ns, last_seen_ns, version)
    VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (key) DO UPDATE SET last_seen_ns = max(last_seen_ns, excluded.last_seen_ns)
"""
_UPSERT_ERROR_GROUP = """
    INSERT INTO error_groups (service, fingerprint, type, message, culprit, first_seen_ns,
                              last_seen_ns, count)
    VALUES (?, ?, ?, ?, ?, ?, ?, 1)
    ON CONFLICT (service, fingerprint) DO UPDATE SET
        count = count + 1,
        first_seen_ns = min(first_seen_ns, excluded.first_seen_ns),
        type = iif(excluded.last_seen_ns >= last_seen_ns, excluded.type, type),
        message = iif(excluded.last_seen_ns >= last_seen_ns, excluded.message, message),
        culprit = iif(excluded.last_seen_ns >= last_seen_ns, excluded.culprit, culprit),
        last_seen_ns = max(last_seen_ns, excluded.last_seen_ns)
    RETURNING id, last_seen_ns, state, state_changed_ns, resolved_release
"""
_INSERT_ERROR_EVENT = _insert("error_events", (
    "group_id", "time_ns", "resource_key", "service", "trace_id", "span_id", "route", "user_id",
    "handled", "source", "event", "release"))


@contextmanager
def _store_errors():
    """SQLite's and the driver's exceptions as the store's own (``store.StoreError``)."""
    try:
        yield
    except (sqlite3.OperationalError, OSError) as exc:  # locked, busy, disk full, I/O: try again later
        raise StoreUnavailable(f"SQLite: {exc}") from exc
    except OverflowError as exc:
        raise StoreRejected("a number is outside the int64 range") from exc
    except (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError,
            sqlite3.DataError, UnicodeEncodeError) as exc:
        raise StoreRejected(f"SQLite refused a value: {exc}") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"SQLite: {exc}") from exc


class SQLiteStore(Queries):
    """``store.Store`` on a SQLite database file.

    ``maintain``: whether this store's own thread checkpoints the WAL and bounds the files
    to ``retention_bytes``; ``spyglass serve``'s worker processes leave it to the main one.
    """

    _errors = staticmethod(_store_errors)
    #: A duration's bucket (rollup.bucket_of), with SQLite's ln() (C's log()), or Python's where
    #: SQLite was built without its math functions.
    BUCKET_SQL = f"CASE WHEN duration_ns > 1 THEN CAST(ln(duration_ns) / {LOG_RATIO!r} AS INTEGER) ELSE 0 END"

    def __init__(self, path, retention_seconds=7 * 86400, retention_bytes=1 << 30, maintain=True):
        self.path = os.path.abspath(path)
        self.retention_seconds = retention_seconds
        self.retention_bytes = retention_bytes
        self._closed = False
        self._readers = queue.SimpleQueue()
        self._write_lock = threading.Lock()
        self._checkpoint_lock = threading.Lock()
        self._checkpointer = None  # the connection checkpoints run on, made when first needed
        with self._errors():
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self._lock_file = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            self._writer = self._connect()
            self.schema_version = self._migrate()
        self.rollup = Rollup(self)
        self._maintainer = _Maintainer(self) if maintain else None
        if self._maintainer:
            self._maintainer.start()

    def describe(self):
        return {"backend": "sqlite", "location": self.path, "schema_version": self.schema_version,
                "retention_seconds": self.retention_seconds, "retention_bytes": self.retention_bytes,
                "file_bytes": self.file_bytes()}

    # -- connections ---------------------------------------------------------------------

    def _connect(self, busy_timeout_ms=_BUSY_TIMEOUT_MS):
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                     timeout=busy_timeout_ms / 1000)
        # Checkpoints (which fsync) run in _Maintainer, off the request path; left to
        # SQLite, every ~1000th page written makes one request wait for the disk.
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON", "wal_autocheckpoint = 0",
                       f"busy_timeout = {busy_timeout_ms}", "temp_store = MEMORY", "cache_size = -16000",
                       f"journal_size_limit = {self.wal_limit}"):
            connection.execute(f"PRAGMA {pragma}")
        try:
            connection.execute("SELECT ln(2)")
        except sqlite3.OperationalError:
            connection.create_function("ln", 1, math.log, deterministic=True)
        return connection

    @property
    def wal_limit(self):
        """Bytes of WAL past which it is checkpointed and truncated."""
        return max(1 << 20, min(MAX_WAL_BYTES, int(self.retention_bytes * WAL_SHARE)))

    @contextmanager
    def _reader(self):
        try:
            connection = self._readers.get_nowait()
        except queue.Empty:
            connection = self._connect()
            connection.row_factory = sqlite3.Row
        try:
            yield connection
        finally:
            if self._closed:
                connection.close()
            else:
                self._readers.put(connection)

    @contextmanager
    def _transaction(self):
        with self._errors(), self.writers_excluded():
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    @contextmanager
    def writers_excluded(self):
        """Hold off every writer, in this process and in the others sharing the file."""
        with self._write_lock, self._file_lock():
            yield

    @contextmanager
    def _file_lock(self):
        """Queue the writers of all processes on one lock file.

        SQLite's own busy handler polls, sleeping up to 100 ms between tries, which wastes
        most of the time of several worker processes writing at once; a blocked ``flock``
        wakes the moment the lock is free.
        """
        if fcntl is None:
            yield
            return
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    def close(self):
        self._closed = True
        if self._maintainer:
            self._maintainer.stop()
        with self._write_lock:
            self._writer.close()
            os.close(self._lock_file)
        with self._checkpoint_lock:
            if self._checkpointer is not None:
                self._checkpointer.close()
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break

    # -- schema --------------------------------------------------------------------------

    def _migrate(self):
        """Bring the schema up to date; its version."""
        version = self._writer.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise SchemaTooNew(f"{self.path} has schema version {version}; this spyglass knows "
                               f"up to {len(MIGRATIONS)}: upgrade spyglass")
        if version == 0:
            # Must precede the first table; lets retention hand freed pages back to the OS.
            self._writer.execute("PRAGMA auto_vacuum = INCREMENTAL")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._transaction() as connection:
                for statement in filter(str.strip, script.split(";")):
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {number}")
        return len(MIGRATIONS)

    # -- writing -------------------------------------------------------------------------

    def write(self, batch):
        now_ns = time.time_ns()
        resources = [(r.key, r.service, r.instance, r.attributes, now_ns, now_ns, r.version)
                     for r in batch.resources.values()]
        with self._transaction() as connection:
            connection.executemany(_UPSERT_RESOURCE, resources)
            if batch.spans:
                connection.executemany(_INSERT_SPANS, batch.spans)
                connection.executemany(_INSERT_TAGS, tag_rows(batch))
            if batch.logs:
                connection.executemany(_INSERT_LOGS, batch.logs)
            if batch.metrics:
                connection.executemany(_INSERT_METRICS, batch.metrics)
            if batch.profiles:
                connection.executemany(_INSERT_PROFILES, batch.profiles)
            for error in batch.errors:
                self._write_error(connection, error)
        if self.wal_bytes() > self.wal_limit:  # the maintainer fell behind (or is in another process)
            self.checkpoint(truncate=True)

    @staticmethod
    def _write_error(connection, error):
        group_id, last_seen_ns, state, state_changed_ns, resolved_release = connection.execute(
            _UPSERT_ERROR_GROUP, (error.service, error.fingerprint, error.type, error.message, error.culprit,
                                  error.time_ns, error.time_ns)).fetchone()
        handled = None if error.handled is None else int(error.handled)
        event_id = connection.execute(_INSERT_ERROR_EVENT, (
            group_id, error.time_ns, error.resource_key, error.service, error.trace_id, error.span_id,
            error.route, error.user_id, handled, error.source,
            json.dumps(error.event, default=str), error.release)).lastrowid
        if error.time_ns >= last_seen_ns:
            connection.execute("UPDATE error_groups SET latest_event_id = ? WHERE id = ?", (event_id, group_id))

        def first_seen(release):
            return connection.execute(RELEASE_FIRST_SEEN, (error.service, release)).fetchone()[0]

        if reopens(state, state_changed_ns, resolved_release, error, first_seen):
            connection.execute(REOPEN, (error.time_ns, group_id))

    def set_error_state(self, group_id, state, now_ns=None):
        """Set a group's state (``error_states.STATES``); the group as it is then, or
        ``None`` if there is no such group."""
        if not 0 < int(group_id) <= INT64_MAX:
            return None
        with self._transaction() as connection:
            cursor = connection.execute(SET_STATE, state_parameters(
                group_id, state, time.time_ns() if now_ns is None else now_ns))
            row = cursor.fetchone()
        return group_state(dict(zip((column[0] for column in cursor.description), row))) if row else None

    # -- the rollup (rollup.py) ------------------------------------------------------------

    def _rollup_mark(self, rolling_to_ns):
        """What tells the spans written from now on: the greatest rowid (SQLite gives each
        insert a greater one than any there, whichever process writes it)."""
        return self._rows("SELECT coalesce(max(rowid), 0) AS mark FROM spans")[0]["mark"]

    def _late_minutes(self, mark, watermark_ns, until_mark=None):
        """The minutes before ``watermark_ns`` of the spans the rollup counts written after
        ``mark`` (up to ``until_mark``): late for the rollup; with how many."""
        newest = self._rollup_mark(None)
        if newest < mark:  # every span was deleted since, and rowids began again
            mark = 0
        return {row["minute"]: row["writes"] for row in self._rows(
            f"SELECT start_ns / {MINUTE_NS} AS minute, count(*) AS writes FROM spans "
            f"WHERE rowid > ? AND rowid <= ? AND ({ROLLED_SPANS}) AND start_ns < ? GROUP BY start_ns / {MINUTE_NS}",
            [mark, newest if until_mark is None else until_mark, watermark_ns])}

    def _rolled_up(self, late):
        """Nothing to forget: the mark written with the rollup moved past the late spans."""

    def _write_rollup(self, statements):
        """Run each ``(sql, rows)`` of ``statements`` over its rows (a ``rollup.Table`` for
        ``sql``: insert them into it), in one transaction."""
        with self._transaction() as connection:
            for sql, rows in statements:
                connection.executemany(sql.insert() if isinstance(sql, Table) else sql, rows)

    # -- retention -----------------------------------------------------------------------

    def used_bytes(self):
        """Bytes of the database's pages that hold data (free pages excluded)."""
        with self._errors(), self._reader() as connection:
            pages = connection.execute("PRAGMA page_count").fetchone()[0]
            free = connection.execute("PRAGMA freelist_count").fetchone()[0]
            size = connection.execute("PRAGMA page_size").fetchone()[0]
        return (pages - free) * size

    def file_bytes(self):
        """Bytes on disk: the database file and its WAL."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(self.path + suffix)
            except OSError:
                pass
        return total

    def apply_retention(self, now_ns=None):
        """Delete what is older than the age limit, then the oldest while over the size
        limit; give the freed pages back to the file system when they are many."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        deleted = self._delete_before(now_ns - int(self.retention_seconds * NS))
        if self.used_bytes() > self.retention_bytes:
            for table, count in self.shrink(SIZE_LOW_WATER).items():
                deleted[table] += count
        self.compact()
        return dict(deleted)

    def shrink(self, share=SIZE_LOW_WATER):
        """Delete the oldest data, a twentieth of its time range at a time, until it takes at
        most ``share`` of the size limit; the WAL that costs is emptied as it goes."""
        deleted = defaultdict(int)
        while self.used_bytes() > self.retention_bytes * share:
            oldest, newest = self._time_range()
            if oldest is None:
                break
            step = self._delete_before(oldest + max(1, (newest - oldest) // 20))
            for table, count in step.items():
                deleted[table] += count
            if self.wal_bytes() > self.wal_limit:
                self.checkpoint(truncate=True)
            if not any(step.values()):
                break
        return deleted

    def compact(self):
        """Return free pages to the file system when they are a quarter of the file or more
        (fewer are reused by the next writes: moving them would only churn the WAL), then
        empty the WAL."""
        with self._errors(), self.writers_excluded():
            pages = self._writer.execute("PRAGMA page_count").fetchone()[0]
            free = self._writer.execute("PRAGMA freelist_count").fetchone()[0]
            if free * 4 >= pages:
                self._writer.execute("PRAGMA incremental_vacuum")
        self.checkpoint(truncate=True)

    def wal_bytes(self):
        try:
            return os.path.getsize(self.path + "-wal")
        except OSError:
            return 0

    def checkpoint(self, truncate=False):
        """Copy the WAL into the database; with ``truncate``, writers held off so that it
        completes, then empty the WAL file. A reader in the way makes it give up for now."""
        with self._checkpoint_lock:
            try:
                if self._checkpointer is None:
                    self._checkpointer = self._connect(_CHECKPOINT_BUSY_TIMEOUT_MS)
                if not truncate:
                    self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    return
                with self.writers_excluded():
                    self._checkpointer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:  # busy or gone: the next round tries again
                pass

    def _time_range(self):
        with self._errors(), self._reader() as connection:
            ranges = [connection.execute(f"SELECT min({column}), max({column}) FROM {table}").fetchone()
                      for table, column in _TIMED_TABLES]
        ranges = [r for r in ranges if r[0] is not None]
        if not ranges:
            return None, None
        return min(r[0] for r in ranges), max(r[1] for r in ranges)

    def _delete_before(self, cutoff_ns):
        deleted = defaultdict(int)
        with self._transaction() as connection:
            for table, column in _TIMED_TABLES:
                deleted[table] = connection.execute(f"DELETE FROM {table} WHERE {column} < ?", (cutoff_ns,)).rowcount
            deleted["error_groups"] = connection.execute(
                "DELETE FROM error_groups WHERE NOT EXISTS "
                "(SELECT 1 FROM error_events WHERE group_id = error_groups.id)").rowcount
            deleted["resources"] = connection.execute(
                "DELETE FROM resources WHERE last_seen_ns < ?", (cutoff_ns,)).rowcount
        return deleted

    # -- reading -------------------------------------------------------------------------

    def _rows(self, sql, parameters=()):
        with self._errors(), self._reader() as connection:
            return [dict(row) for row in connection.execute(sql, parameters)]


class _Maintainer(Maintainer):
    """Keeps the files within the size limit, off the request path.

    Every ``poll`` seconds it looks at the files' sizes (``stat`` calls):

    - the data past ``SIZE_HIGH_WATER`` of the limit: the oldest is deleted down to
      ``SIZE_LOW_WATER`` at once, not at the next retention round, which at tens of MB a
      second would come far too late;
    - the WAL past half its limit: a PASSIVE checkpoint, which blocks no one, copies it
      into the database, so that the checkpoint a writer runs when the WAL reaches its
      limit (``write``) has little left to do. That one holds the writers off: under a
      steady stream of writes a checkpoint beside them never catches up, and the WAL would
      grow without end;
    - otherwise, every ``interval`` seconds, a PASSIVE checkpoint. Checkpoints fsync, and
      an fsync costs the same for 1 or 64 MB, so they are not run after every thousand
      pages as SQLite would.
    """

    poll = 0.05

    def __init__(self, store, interval=10.0):
        super().__init__(store, interval)
        self.last = time.monotonic()

    def round(self):
        store, now = self.store, time.monotonic()
        if store.file_bytes() > self.high_water and store.used_bytes() > self.high_water:
            self.last = now
            store.shrink()
            store.checkpoint(truncate=True)
        elif store.wal_bytes() > store.wal_limit // 2 or now - self.last >= self.interval:
            self.last = now  # the writers' own checkpoint is then short; or, every interval
            store.checkpoint()
