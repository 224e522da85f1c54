"""The default store: one SQLite file in WAL mode.

One writer connection, behind a lock, takes each batch in one ``executemany`` per table
inside one transaction; WAL lets any number of readers (a small pool of connections) run
beside it. Several collector processes may share the file: SQLite serializes their
writes and ``busy_timeout`` makes them wait their turn instead of failing.
"""
import json
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

from .model import LOG_COLUMNS, METRIC_COLUMNS, SPAN_COLUMNS
from .sqlite_schema import MIGRATIONS

NS = 1_000_000_000
_BUSY_TIMEOUT_MS = 10_000
_TIMED_TABLES = (("spans", "start_ns"), ("logs", "time_ns"), ("metric_points", "time_ns"),
                 ("error_events", "time_ns"))


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer spyglass than this one."""


def _insert(table, columns, verb="INSERT"):
    return f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


_INSERT_SPANS = _insert("spans", SPAN_COLUMNS, "INSERT OR REPLACE")
_INSERT_LOGS = _insert("logs", LOG_COLUMNS)
_INSERT_METRICS = _insert("metric_points", METRIC_COLUMNS)
_UPSERT_RESOURCE = """
    INSERT INTO resources (key, service, instance, attributes, first_seen_ns, last_seen_ns)
    VALUES (?, ?, ?, ?, ?, ?)
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
    RETURNING id, last_seen_ns
"""
_INSERT_ERROR_EVENT = _insert("error_events", (
    "group_id", "time_ns", "resource_key", "service", "trace_id", "span_id", "route", "user_id",
    "handled", "source", "event"))


def percentile(sorted_values, fraction):
    """Nearest-rank percentile of an ascending list (``None`` when empty)."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * fraction // 1))  # ceil without float surprises
    return sorted_values[int(rank) - 1]


def _ms(ns):
    return None if ns is None else ns / 1e6


def _latency(durations_ns):
    durations_ns.sort()
    return {"p50_ms": _ms(percentile(durations_ns, 0.50)), "p95_ms": _ms(percentile(durations_ns, 0.95)),
            "p99_ms": _ms(percentile(durations_ns, 0.99)), "max_ms": _ms(durations_ns[-1] if durations_ns else None)}


def _json(text):
    return json.loads(text) if text else None


class SQLiteStore:
    """``store.Store`` on a SQLite database file.

    ``checkpoint_interval``: seconds between WAL checkpoints by this store's own thread;
    ``None`` leaves them to another process sharing the file (``spyglass serve``'s
    workers leave them to the main process).
    """

    def __init__(self, path, retention_seconds=7 * 86400, retention_bytes=1 << 30, checkpoint_interval=10.0):
        self.path = os.path.abspath(path)
        self.retention_seconds = retention_seconds
        self.retention_bytes = retention_bytes
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._write_lock = threading.Lock()
        self._lock_file = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._writer = self._connect()
        self._migrate()
        self._readers = queue.SimpleQueue()
        self._closed = False
        self._checkpointer = _Checkpointer(self, checkpoint_interval) if checkpoint_interval else None
        if self._checkpointer:
            self._checkpointer.start()

    # -- connections ---------------------------------------------------------------------

    def _connect(self):
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                     timeout=_BUSY_TIMEOUT_MS / 1000)
        # Checkpoints (which fsync) run in _Checkpointer, off the request path; left to
        # SQLite, every ~1000th page written makes one request wait for the disk.
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON", "wal_autocheckpoint = 0",
                       f"busy_timeout = {_BUSY_TIMEOUT_MS}", "temp_store = MEMORY", "cache_size = -16000",
                       f"journal_size_limit = {64 << 20}"):
            connection.execute(f"PRAGMA {pragma}")
        return connection

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
        with self._write_lock, self._file_lock():
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

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
        if self._checkpointer:
            self._checkpointer.stop()
        with self._write_lock:
            self._writer.close()
            os.close(self._lock_file)
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break

    # -- schema --------------------------------------------------------------------------

    @property
    def schema_version(self):
        return self._writer.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self):
        version = self.schema_version
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

    # -- writing -------------------------------------------------------------------------

    def write(self, batch):
        now_ns = time.time_ns()
        resources = [(r.key, r.service, r.instance, r.attributes, now_ns, now_ns)
                     for r in batch.resources.values()]
        with self._transaction() as connection:
            connection.executemany(_UPSERT_RESOURCE, resources)
            if batch.spans:
                connection.executemany(_INSERT_SPANS, batch.spans)
            if batch.logs:
                connection.executemany(_INSERT_LOGS, batch.logs)
            if batch.metrics:
                connection.executemany(_INSERT_METRICS, batch.metrics)
            for error in batch.errors:
                self._write_error(connection, error)

    @staticmethod
    def _write_error(connection, error):
        group_id, last_seen_ns = connection.execute(_UPSERT_ERROR_GROUP, (
            error.service, error.fingerprint, error.type, error.message, error.culprit,
            error.time_ns, error.time_ns)).fetchone()
        handled = None if error.handled is None else int(error.handled)
        event_id = connection.execute(_INSERT_ERROR_EVENT, (
            group_id, error.time_ns, error.resource_key, error.service, error.trace_id, error.span_id,
            error.route, error.user_id, handled, error.source,
            json.dumps(error.event, default=str))).lastrowid
        if error.time_ns >= last_seen_ns:
            connection.execute("UPDATE error_groups SET latest_event_id = ? WHERE id = ?", (event_id, group_id))

    # -- retention -----------------------------------------------------------------------

    def used_bytes(self):
        with self._reader() as connection:
            pages = connection.execute("PRAGMA page_count").fetchone()[0]
            free = connection.execute("PRAGMA freelist_count").fetchone()[0]
            size = connection.execute("PRAGMA page_size").fetchone()[0]
        return (pages - free) * size

    def apply_retention(self, now_ns=None):
        now_ns = time.time_ns() if now_ns is None else now_ns
        deleted = self._delete_before(now_ns - int(self.retention_seconds * NS))
        while self.used_bytes() > self.retention_bytes:
            oldest, newest = self._time_range()
            if oldest is None:
                break
            step = self._delete_before(oldest + max(1, (newest - oldest) // 10))
            for table, count in step.items():
                deleted[table] += count
            if not any(step.values()):
                break
        with self._write_lock:
            self._writer.execute("PRAGMA incremental_vacuum")
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return dict(deleted)

    def _time_range(self):
        with self._reader() as connection:
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
        with self._reader() as connection:
            return connection.execute(sql, parameters).fetchall()

    def services(self, since_ns):
        stats = defaultdict(lambda: {"durations": [], "errors": 0})
        for row in self._rows("SELECT service, duration_ns, is_error FROM spans "
                              "WHERE is_root AND start_ns >= ?", (since_ns,)):
            entry = stats[row["service"]]
            entry["durations"].append(row["duration_ns"])
            entry["errors"] += row["is_error"]
        seen = {row["service"]: row for row in self._rows(
            "SELECT service, count(*) AS instances, max(last_seen_ns) AS last_seen_ns FROM resources "
            "WHERE last_seen_ns >= ? GROUP BY service", (since_ns,))}
        result = []
        for service in sorted(set(stats) | set(seen)):
            entry = stats[service]
            requests = len(entry["durations"])
            result.append({
                "service": service, "requests": requests, "errors": entry["errors"],
                "error_rate": entry["errors"] / requests if requests else 0.0,
                **_latency(entry["durations"]),
                "instances": seen[service]["instances"] if service in seen else 0,
                "last_seen_ns": seen[service]["last_seen_ns"] if service in seen else None,
            })
        return result

    def routes(self, since_ns, service=None):
        sql = ("SELECT service, http_method, route, duration_ns, is_error FROM spans "
               "WHERE is_root AND start_ns >= ?")
        parameters = [since_ns]
        if service:
            sql += " AND service = ?"
            parameters.append(service)
        groups = defaultdict(lambda: {"durations": [], "errors": 0})
        for row in self._rows(sql, parameters):
            entry = groups[(row["service"], row["http_method"], row["route"])]
            entry["durations"].append(row["duration_ns"])
            entry["errors"] += row["is_error"]
        result = []
        for (service_name, method, route), entry in groups.items():
            requests = len(entry["durations"])
            total_ms = sum(entry["durations"]) / 1e6
            result.append({
                "service": service_name, "method": method, "route": route,
                "name": f"{method} {route}" if method and not route.startswith(f"{method} ") else route,
                "requests": requests, "errors": entry["errors"], "error_rate": entry["errors"] / requests,
                "total_ms": total_ms, **_latency(entry["durations"]),
            })
        result.sort(key=lambda r: r["p95_ms"], reverse=True)
        return result

    def traces(self, since_ns, until_ns=None, service=None, route=None, status=None,
               min_duration_ns=0, errors_only=False, limit=100):
        clauses, parameters = ["is_root", "start_ns >= ?"], [since_ns]
        if until_ns is not None:
            clauses.append("start_ns <= ?")
            parameters.append(until_ns)
        if service:
            clauses.append("service = ?")
            parameters.append(service)
        if route:
            clauses.append("(route = ? OR name = ?)")
            parameters += [route, route]
        if status:
            clauses.append(_status_clause(status, parameters))
        if min_duration_ns:
            clauses.append("duration_ns >= ?")
            parameters.append(int(min_duration_ns))
        if errors_only:
            clauses.append("is_error")
        parameters.append(int(limit))
        rows = self._rows(
            "SELECT trace_id, span_id, service, name, route, http_method, http_status, start_ns, "
            "duration_ns, is_error, user_id, "
            "(SELECT count(*) FROM spans AS s WHERE s.trace_id = spans.trace_id) AS span_count "
            f"FROM spans WHERE {' AND '.join(clauses)} ORDER BY start_ns DESC LIMIT ?", parameters)
        return [{**dict(row), "duration_ms": row["duration_ns"] / 1e6, "is_error": bool(row["is_error"])}
                for row in rows]

    def trace(self, trace_id):
        trace_id = trace_id.lower()
        spans = self._rows("SELECT * FROM spans WHERE trace_id = ? ORDER BY start_ns, rowid", (trace_id,))
        if not spans:
            return None
        resources = {row["key"]: {"service": row["service"], "instance": row["instance"],
                                  "attributes": _json(row["attributes"])}
                     for row in self._rows(
                         "SELECT * FROM resources WHERE key IN (SELECT DISTINCT resource_key FROM spans "
                         "WHERE trace_id = ?)", (trace_id,))}
        logs = [_log(row) for row in self._rows(
            "SELECT * FROM logs WHERE trace_id = ? ORDER BY time_ns", (trace_id,))]
        errors = [dict(row) for row in self._rows(
            "SELECT e.id, e.group_id, e.span_id, e.time_ns, g.type, g.message FROM error_events AS e "
            "JOIN error_groups AS g ON g.id = e.group_id WHERE e.trace_id = ? ORDER BY e.time_ns", (trace_id,))]
        start_ns = min(row["start_ns"] for row in spans)
        end_ns = max(row["end_ns"] for row in spans)
        return {
            "trace_id": trace_id, "start_ns": start_ns, "duration_ms": (end_ns - start_ns) / 1e6,
            "services": sorted({row["service"] for row in spans}),
            "spans": [_span(row) for row in spans], "resources": resources, "logs": logs, "errors": errors,
        }

    def slow_calls(self, since_ns, service=None, sort="total", limit=50):
        sql = ("SELECT service, call_key, call_label, call_category, duration_ns, call_count, trace_id, "
               "span_id FROM spans WHERE call_key IS NOT NULL AND start_ns >= ?")
        parameters = [since_ns]
        if service:
            sql += " AND service = ?"
            parameters.append(service)
        groups = {}
        for row in self._rows(sql, parameters):
            key = (row["service"], row["call_key"])
            entry = groups.get(key)
            if entry is None:
                entry = groups[key] = {"service": row["service"], "key": row["call_key"],
                                       "label": row["call_label"], "category": row["call_category"],
                                       "count": 0, "total_ns": 0, "durations": [], "slowest": None}
            entry["count"] += row["call_count"] or 1
            entry["total_ns"] += row["duration_ns"]
            entry["durations"].append(row["duration_ns"])
            if entry["slowest"] is None or row["duration_ns"] > entry["slowest"][0]:
                entry["slowest"] = (row["duration_ns"], row["trace_id"], row["span_id"])
        result = []
        for entry in groups.values():
            durations = sorted(entry.pop("durations"))
            _, trace_id, span_id = entry.pop("slowest")
            total_ns = entry.pop("total_ns")
            result.append({**entry, "total_ms": total_ns / 1e6, "avg_ms": total_ns / 1e6 / entry["count"],
                           "p95_ms": _ms(percentile(durations, 0.95)), "max_ms": _ms(durations[-1]),
                           "slowest_trace_id": trace_id, "slowest_span_id": span_id})
        order = {"total": "total_ms", "count": "count", "p95": "p95_ms"}[sort]
        result.sort(key=lambda r: r[order], reverse=True)
        return result[:limit]

    def error_groups(self, since_ns, service=None, limit=100):
        sql = ("SELECT g.*, (SELECT count(DISTINCT user_id) FROM error_events WHERE group_id = g.id) AS users, "
               "(SELECT count(*) FROM error_events WHERE group_id = g.id AND time_ns >= ?) AS recent "
               "FROM error_groups AS g WHERE g.last_seen_ns >= ?")
        parameters = [since_ns, since_ns]
        if service:
            sql += " AND g.service = ?"
            parameters.append(service)
        sql += " ORDER BY g.last_seen_ns DESC LIMIT ?"
        parameters.append(int(limit))
        return [dict(row) for row in self._rows(sql, parameters)]

    def error_group(self, group_id):
        groups = self._rows(
            "SELECT g.*, (SELECT count(DISTINCT user_id) FROM error_events WHERE group_id = g.id) AS users "
            "FROM error_groups AS g WHERE g.id = ?", (int(group_id),))
        if not groups:
            return None
        group = dict(groups[0])
        latest = self._rows("SELECT * FROM error_events WHERE id = ?", (group["latest_event_id"],))
        group["latest_event"] = _error_event(latest[0]) if latest else None
        group["events"] = [dict(row) for row in self._rows(
            "SELECT id, time_ns, trace_id, span_id, route, user_id, handled FROM error_events "
            "WHERE group_id = ? ORDER BY time_ns DESC LIMIT 50", (group["id"],))]
        trace_id = latest[0]["trace_id"] if latest else None
        group["logs"] = [_log(row) for row in self._rows(
            "SELECT * FROM logs WHERE trace_id = ? ORDER BY time_ns", (trace_id,))] if trace_id else []
        return group

    def latest_metrics(self, since_ns, service=None):
        sql = ("SELECT service, instance, name, unit, kind, monotonic, attributes, value, count, sum, "
               "max(time_ns) AS time_ns FROM metric_points WHERE time_ns >= ?")
        parameters = [since_ns]
        if service:
            sql += " AND service = ?"
            parameters.append(service)
        sql += " GROUP BY service, instance, name, attributes ORDER BY service, instance, name"
        return [{**dict(row), "attributes": _json(row["attributes"])} for row in self._rows(sql, parameters)]

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


class _Checkpointer(threading.Thread):
    """Copies the WAL into the database, on its own connection, off the request path.

    A checkpoint fsyncs, and an fsync costs the same whether it flushes 1 or 64 MB, so
    it runs when the WAL has grown past ``wal_bytes`` or ``interval`` seconds have gone
    by, not after every thousand pages as SQLite would. PASSIVE never blocks writers or
    readers.
    """

    def __init__(self, store, interval, wal_bytes=64 << 20, poll=0.5):
        super().__init__(name="spyglass-checkpoint", daemon=True)
        self.store, self.interval, self.wal_bytes, self.poll = store, interval, wal_bytes, poll
        self.stopped = threading.Event()

    def _wal_size(self):
        try:
            return os.path.getsize(self.store.path + "-wal")
        except OSError:
            return 0

    def run(self):
        connection = self.store._connect()
        last = time.monotonic()
        try:
            while not self.stopped.wait(self.poll):
                if time.monotonic() - last < self.interval and self._wal_size() < self.wal_bytes:
                    continue
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:  # busy or gone: the next round tries again
                    pass
                last = time.monotonic()
        finally:
            connection.close()

    def stop(self):
        self.stopped.set()
        if self.is_alive():
            self.join(timeout=30)


def _rate(points):
    """Per-second increase between consecutive points of a cumulative counter (resets skipped)."""
    rates = []
    for (t0, v0), (t1, v1) in zip(points, points[1:]):
        if t1 > t0 and v0 is not None and v1 is not None and v1 >= v0:
            rates.append([t1, (v1 - v0) / (t1 - t0)])
    return rates


def _status_clause(status, parameters):
    """SQL for a status filter: ``5xx`` (a class), ``404`` (a code) or ``error``."""
    status = str(status).strip().lower()
    if status == "error":
        return "is_error"
    if len(status) == 3 and status[0].isdigit() and status[1:] == "xx":
        parameters += [int(status[0]) * 100, int(status[0]) * 100 + 99]
        return "http_status BETWEEN ? AND ?"
    parameters.append(int(status))
    return "http_status = ?"


def _span(row):
    span = dict(row)
    for column in ("attributes", "events", "links"):
        span[column] = _json(span[column]) or ([] if column != "attributes" else {})
    span["duration_ms"] = span["duration_ns"] / 1e6
    span["is_root"], span["is_error"] = bool(span["is_root"]), bool(span["is_error"])
    return span


def _log(row):
    return {**dict(row), "attributes": _json(row["attributes"])}


def _error_event(row):
    event = dict(row)
    event["event"] = _json(event["event"])
    return event
