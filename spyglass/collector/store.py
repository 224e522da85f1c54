"""The storage interface: all the collector asks of a backend, and how to open one.

The receiver writes ``model.Batch`` objects; the API reads through the query methods,
which return JSON-ready dicts and lists. Times are Unix nanoseconds everywhere. SQLite
(``sqlite_store``) is the default backend; one for PostgreSQL, for several collectors
behind a load balancer, implements this same class.
"""
from typing import Optional, Protocol


class Store(Protocol):
    def write(self, batch) -> None:
        """Store a whole ``Batch`` in one transaction, or nothing of it."""

    def services(self, since_ns: int) -> list:
        """Each service seen since ``since_ns``: requests, error rate, p50/p95/p99, instances."""

    def routes(self, since_ns: int, service: Optional[str] = None) -> list:
        """Per service and route: requests, error rate, p50/p95/p99."""

    def traces(self, since_ns: int, until_ns: Optional[int] = None, service=None, route=None,
               status=None, min_duration_ns=0, errors_only=False, limit=100) -> list:
        """Requests (local root spans), newest first."""

    def trace(self, trace_id: str) -> Optional[dict]:
        """One trace: its spans with parent links, attributes and events, its logs and errors."""

    def slow_calls(self, since_ns: int, service=None, sort="total", limit=50) -> list:
        """Calls grouped by normalized statement or operation, ranked by ``sort``."""

    def error_groups(self, since_ns: int, service=None, limit=100) -> list:
        """Error groups seen since ``since_ns``, most recent first."""

    def error_group(self, group_id: int) -> Optional[dict]:
        """One group with its latest event in full, recent events and the event's logs."""

    def latest_metrics(self, since_ns: int, service=None) -> list:
        """The latest point of each metric series per service and process."""

    def metric_series(self, name: str, since_ns: int, service=None, instance=None) -> list:
        """The points of metric ``name`` over time, one series per process and attribute set."""

    def apply_retention(self, now_ns: Optional[int] = None) -> dict:
        """Delete what is older than the age limit, then the oldest until under the size limit."""

    def close(self) -> None:
        """Release connections."""


def open_store(config, maintain=True):
    """The store for ``config.db``: a SQLite database file path (the only backend yet).

    ``maintain``: whether this store does the database's upkeep (WAL checkpoints); one
    process per database should.
    """
    from .sqlite_store import SQLiteStore

    return SQLiteStore(config.db, retention_seconds=config.retention_seconds,
                       retention_bytes=config.retention_bytes,
                       checkpoint_interval=10.0 if maintain else None)
