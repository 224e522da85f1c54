"""The collector's settings: defaults < environment variables < command-line flags."""
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from .durations import parse_duration

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def default_db_path():
    """``$XDG_DATA_HOME/spyglass/spyglass.db``, else ``~/.local/share/spyglass/spyglass.db``."""
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return str(Path(data_home) / "spyglass" / "spyglass.db")


def parse_size(text):
    """Bytes in ``text``: ``1048576``, ``64k``, ``16MB``, ``2g``."""
    text = str(text).strip().lower().rstrip("b")
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:], 1)
    return int(float(text.rstrip("kmg")) * scale)


@dataclass
class CollectorConfig:
    """Every knob of ``spyglass serve``; each has an environment variable (see ``ENV``)."""

    host: str = "127.0.0.1"
    port: int = 4318
    db: str = field(default_factory=default_db_path)  # a SQLite file path or URL, or postgresql://…
    api_key: str = ""
    max_body_bytes: int = 16 << 20
    retention_seconds: float = 7 * 86400
    retention_bytes: int = 1 << 30
    retention_interval: float = 60.0
    workers: int = 0  # 0: one per core, up to 4
    threads: int = 0  # per worker; 0: four per core, 4 to 32

    def __post_init__(self):
        from .store import backend_of

        backend_of(self.db)  # a --db the collector cannot open is refused before it starts

    @property
    def binds_publicly(self):
        return self.host not in LOOPBACK_HOSTS


#: field name -> (environment variable, parser)
ENV = {
    "host": ("SPYGLASS_COLLECTOR_HOST", str),
    "port": ("SPYGLASS_COLLECTOR_PORT", int),
    "db": ("SPYGLASS_COLLECTOR_DB", str),
    "api_key": ("SPYGLASS_COLLECTOR_API_KEY", str),
    "max_body_bytes": ("SPYGLASS_COLLECTOR_MAX_BODY", parse_size),
    "retention_seconds": ("SPYGLASS_COLLECTOR_RETENTION", parse_duration),
    "retention_bytes": ("SPYGLASS_COLLECTOR_RETENTION_SIZE", parse_size),
    "retention_interval": ("SPYGLASS_COLLECTOR_RETENTION_INTERVAL", parse_duration),
    "workers": ("SPYGLASS_COLLECTOR_WORKERS", int),
    "threads": ("SPYGLASS_COLLECTOR_THREADS", int),
}


def load_config(overrides=None, environ=None):
    """Defaults, then environment variables, then ``overrides`` (flags; ``None`` = unset)."""
    environ = os.environ if environ is None else environ
    values = {}
    for spec in fields(CollectorConfig):
        variable, parse = ENV[spec.name]
        if environ.get(variable):
            try:
                values[spec.name] = parse(environ[variable])
            except ValueError as exc:
                raise ValueError(f"{variable}: {exc}") from None
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return CollectorConfig(**values)

