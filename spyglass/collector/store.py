"""The storage interface: all the collector asks of a backend, its errors, and how to open one.

The receiver writes ``model.Batch`` objects; the API reads through the query methods,
which return JSON-ready dicts and lists. Times are Unix nanoseconds everywhere. Two
backends implement ``Store``: SQLite (``sqlite_store``, one file, the default) and
PostgreSQL (``postgres_store``, for several collectors behind a load balancer). Both
answer the queries with the same SQL (``queries``), and raise only the errors below, so
nothing above this module knows which database it talks to.
"""
import logging
import threading
import time
from typing import Optional, Protocol
from urllib.parse import urlsplit


#: Size retention starts when the data passes this share of the limit and deletes the
#: oldest down to the lower share. What is left of the limit is room for what arrives
#: meanwhile (and, on SQLite, for the WAL: deleting rewrites pages, so it costs WAL too).
SIZE_HIGH_WATER, SIZE_LOW_WATER = 0.8, 0.6
#: Seconds between the rounds that roll requests up per minute (``rollup``) once caught up.
ROLL_UP_INTERVAL = 1.0

logger = logging.getLogger("spyglass.collector")


class StoreError(Exception):
    """The store failed in a way the sender cannot fix by sending something else."""


class StoreUnavailable(StoreError):
    """The database cannot be reached, is locked or is full for now: retry later (503)."""


class StoreRejected(StoreError):
    """The database refused this batch's values (a number out of range): the sender's fault (400)."""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer spyglass than this one."""


class Store(Protocol):
    def write(self, batch) -> None:
        """Store a whole ``Batch`` in one transaction, or nothing of it."""

    def describe(self) -> dict:
        """What the UI and ``/api/health`` show about the store: backend, location (no
        password), schema version, and the retention limits in force."""

    def services(self, since_ns: int) -> list:
        """Each service seen since ``since_ns``: requests, error rate, p50/p95/p99, instances."""

    def service_names(self, since_ns: int) -> list:
        """The names of the services seen since ``since_ns``, sorted."""

    def routes(self, since_ns: int, service: Optional[str] = None) -> list:
        """Per service and route: requests, error rate, p50/p95/p99."""

    def traces(self, since_ns: int, until_ns: Optional[int] = None, service=None, route=None,
               status=None, min_duration_ns=0, errors_only=False, limit=100) -> list:
        """Requests (local root spans), newest first."""

    def trace(self, trace_id: str) -> Optional[dict]:
        """One trace: its spans with parent links, attributes and events, its logs and errors."""

    def profile(self, trace_id=None, service=None, route=None, since_ns=0, limit=500) -> dict:
        """Stacks and their samples: a trace's, a route's requests' or a service's."""

    def slow_calls(self, since_ns: int, service=None, sort="total", limit=50, slow_only=False) -> list:
        """Calls grouped by normalized statement or operation, ranked by ``sort``; with
        ``slow_only``, only those at or over their slow threshold (``spyglass.slow``)."""

    def slow_call_p95_series(self, since_ns: int, until_ns: int, step_ns: int, calls, slow_only=False) -> dict:
        """The p95 over time of each ``(service, key)`` of ``calls``, per bucket of ``step_ns``."""

    def error_groups(self, since_ns: int, service=None, limit=100, states=None) -> list:
        """Error groups seen since ``since_ns`` (in one of ``states``, if given), most recent first."""

    def error_group(self, group_id: int) -> Optional[dict]:
        """One group with its latest event in full, recent events and the event's logs."""

    def error_group_activity(self, group_id: int, since_ns: int, until_ns: int, step_ns: int) -> Optional[dict]:
        """A group's events per bucket of ``step_ns``, and its top routes, releases and users."""

    def set_error_state(self, group_id: int, state: str) -> Optional[dict]:
        """Make a group open, resolved or ignored; ``None`` if there is no such group."""

    def latest_metrics(self, since_ns: int, service=None) -> list:
        """The latest point of each metric series per service and process."""

    def metric_series(self, name: str, since_ns: int, service=None, instance=None) -> list:
        """The points of metric ``name`` over time, one series per process and attribute set."""

    def apply_retention(self, now_ns: Optional[int] = None) -> dict:
        """Delete what is older than the age limit, then the oldest until under the size limit."""

    def close(self) -> None:
        """Release connections and stop the store's threads."""


POSTGRES_SCHEMES = ("postgresql", "postgres")


def backend_of(url):
    """``"sqlite"`` or ``"postgresql"`` for a ``--db`` value: a URL or a plain file path."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in POSTGRES_SCHEMES:
        return "postgresql"
    if scheme in ("", "sqlite"):
        return "sqlite"
    raise ValueError(f"unknown database {url!r}: use a file path, sqlite:///path or postgresql://user@host/db")


def sqlite_path(url):
    """The file of ``sqlite:///abs/path``, ``sqlite://rel/path`` or a plain path."""
    return url.split("://", 1)[1] if "://" in url else url


def open_store(target, maintain=True):
    """The store ``target`` names: a ``--db`` value, or a ``CollectorConfig`` (its ``db`` and
    retention limits). By scheme: a file path or ``sqlite:///path`` opens SQLite,
    ``postgresql://user@host/db`` PostgreSQL (the ``collector-postgres`` extra).

    ``maintain``: whether this store does the database's upkeep (WAL checkpoints, bounding
    the files or tables to the size limit); one process per database should (on
    PostgreSQL, one per collector is safe: they take turns).
    """
    from .config import CollectorConfig

    config = CollectorConfig(db=target) if isinstance(target, str) else target
    limits = {"retention_seconds": config.retention_seconds, "retention_bytes": config.retention_bytes}
    if backend_of(config.db) == "postgresql":
        try:
            from .postgres_store import PostgresStore
        except ImportError as exc:
            raise StoreError(f"a PostgreSQL store needs the collector-postgres extra: "
                             f"pip install 'spyglass[collector-postgres]' ({exc})") from None
        return PostgresStore(config.db, maintain=maintain, **limits)
    from .sqlite_store import SQLiteStore

    return SQLiteStore(sqlite_path(config.db), maintain=maintain, **limits)


class Maintainer(threading.Thread):
    """A store's thread that keeps it within its size limit between retention rounds, off
    the request path: the backend's ``round()`` every ``poll`` seconds; and rolls requests
    up per minute (``rollup.Rollup.roll_up``) every ``ROLL_UP_INTERVAL``, or each round
    while catching up."""

    poll = 0.1
    next_roll_up = 0.0
    roll_up_failed = False

    def __init__(self, store, interval=10.0):
        super().__init__(name="spyglass-maintenance", daemon=True)
        self.store, self.interval = store, interval
        self.high_water = store.retention_bytes * SIZE_HIGH_WATER
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(self.poll):
            try:
                self.round()
                self.roll_up()
            except StoreError:  # busy or gone: the next round tries again
                pass

    def roll_up(self):
        if time.monotonic() < self.next_roll_up:
            return
        try:
            behind = self.store.rollup.roll_up()
        except StoreError:
            raise
        except Exception:  # noqa: BLE001 - a bug here must not stop the size limit's upkeep
            if not self.roll_up_failed:
                logger.exception("rolling requests up failed; the summaries read the spans")
            self.roll_up_failed, behind = True, False
        self.next_roll_up = 0.0 if behind else time.monotonic() + ROLL_UP_INTERVAL

    def round(self):
        raise NotImplementedError

    def stop(self):
        self.stopped.set()
        if self.is_alive():
            self.join(timeout=30)
