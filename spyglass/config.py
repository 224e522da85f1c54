"""One Config object: defaults < ini file < environment < code.

``KEYS`` is the single table of settings; Configuration.md, ``spyglass makeini`` and the
validation all derive from it. A value that does not parse gives one warning on the
``spyglass`` logger naming the key and where it came from, and the default is used.

Every instrumented process loads this at startup: the table is made of plain objects (a
typing.NamedTuple class alone took 0.2 ms to make).
"""
import logging
import os
from typing import Any, Dict, Optional, Tuple

from .service_name import derived as derived_service_name

log = logging.getLogger("spyglass")

INI_SECTION = "spyglass"
ENV_PREFIX = "SPYGLASS_"


class Key:
    """One setting: its name, parser, default, documentation, the name of its type, and
    its names in the environment (``env``) and in an ini file (``ini``)."""

    __slots__ = ("name", "parse", "default", "doc", "type_name", "env", "ini")

    def __init__(self, name, parse, default, doc, type_name):
        self.name = name
        self.parse = parse
        self.default = default
        self.doc = doc
        self.type_name = type_name
        self.env = ENV_PREFIX + name.upper().replace(".", "_")
        self.ini = "spyglass." + name

    def __repr__(self):
        return f"Key({self.name!r})"


# -- parsers: each takes a str (from ini/env) or a Python value (from code) ----------------

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


def parse_bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected true or false")


def parse_float(value):
    return _number(value, float, "a number")


def parse_int(value):
    return _number(value, int, "a whole number")


def parse_size(value):
    """Bytes: ``4194304``, ``512k``, ``4MiB``, ``1g``."""
    return _number(value, _bytes, "a size in bytes", above_zero=True)


def _number(value, convert, what, above_zero=False):
    """``convert(value)``, a number >= 0 (> 0), refusing a bool (a mistaken switch)."""
    if isinstance(value, bool):
        raise ValueError(f"expected {what}")
    number = convert(value.strip() if isinstance(value, str) else value)
    if number != number or number < 0 or above_zero and number == 0:  # != itself: NaN
        raise ValueError(f"expected {what} {'> 0' if above_zero else '>= 0'}")
    return number


def _bytes(value):
    if isinstance(value, int):
        return value
    text = str(value).strip().lower().removesuffix("ib").removesuffix("b")
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:], 1)
    return int(float(text.rstrip("kmg").strip()) * scale)


def parse_rate(value):
    rate = parse_float(value)
    if rate > 1:
        raise ValueError("expected a number between 0 and 1")
    return rate


def parse_str(value):
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError("expected text")
    return value.strip()


def parse_endpoint(value):
    url = parse_str(value).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return url


def parse_level(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    level = logging.getLevelName(str(value).strip().upper())
    if not isinstance(level, int):
        raise ValueError("expected a logging level such as WARNING")
    return level


def parse_mapping(value):
    """``k1=v1,k2=v2`` (the OTLP headers / resource attributes syntax) or a dict."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    result = {}
    for item in parse_str(value).split(","):
        if not item.strip():
            continue
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ValueError("expected key=value pairs separated by commas")
        from urllib.parse import unquote

        result[unquote(key.strip())] = unquote(val.strip())
    return result


def parse_list(value):
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(v.strip() for v in parse_str(value).split(",") if v.strip())


def parse_threshold(value):
    """A slow-call threshold in seconds, or ``false`` to switch the library off."""
    if value is False or (isinstance(value, str) and value.strip().lower() in ("false", "off", "no")):
        return False
    return parse_float(value)


def parse_temporality(value):
    text = parse_str(value).lower()
    if text not in ("delta", "cumulative"):
        raise ValueError("expected delta or cumulative")
    return text


def parse_callable_path(value):
    text = parse_str(value)
    if text and ":" not in text:
        raise ValueError("expected module:callable")
    return text


_TYPE_NAMES = {
    parse_temporality: "delta or cumulative",
    parse_callable_path: "module:callable",
    parse_bool: "bool", parse_float: "float", parse_int: "int", parse_rate: "float 0..1",
    parse_str: "str", parse_endpoint: "url", parse_level: "level", parse_mapping: "key=value,…",
    parse_list: "list", parse_threshold: "seconds or false", parse_size: "bytes",
}


def _key(name, parse, default, doc):
    return Key(name, parse, default, doc, _TYPE_NAMES[parse])


# Slow-call thresholds per instrumented library: name -> (default, what it covers).
TIMING = {
    "dbapi2_sqlite3": (0.1, "sqlite3"),
    "dbapi2_psycopg2": (0.1, "psycopg2 / psycopg2-binary"),
    "dbapi2_psycopg": (0.1, "psycopg 3"),
    "dbapi2_pymysql": (0.1, "PyMySQL"),
    "dbapi2_mysqldb": (0.1, "mysqlclient (MySQLdb)"),
    "dbapi2_generic": (0.1, "drivers named in dbapi2_modules"),
    "asyncpg": (0.1, "asyncpg"),
    "aiomysql": (0.1, "aiomysql"),
    "sqlalchemy": (0.1, "SQLAlchemy's statements on drivers spyglass does not instrument "
                        "(the others are timed by their driver's key)"),
    "pysolr": (0.1, "pysolr"),
    "redis": (0.1, "redis-py, sync and asyncio"),
    "memcache": (0.1, "memcached: pymemcache and python-memcached"),
    "jinja2": (0.15, "Jinja2 templates"),
    "django_templates": (0.15, "Django templates"),
    "mako": (0.15, "Mako templates"),
    "chameleon": (0.15, "Chameleon templates"),
    "urllib3": (3.0, "urllib3 (and requests on it)"),
    "requests": (3.0, "requests"),
    "httpx": (3.0, "httpx, sync and async"),
    "httplib": (3.0, "urllib / http.client"),
    "aiohttp": (3.0, "aiohttp's client"),
    "tornado": (3.0, "Tornado's AsyncHTTPClient"),
    "pika": (0.1, "pika (RabbitMQ) publishes"),
    "paho": (0.1, "paho-mqtt publishes"),
    "nats": (0.1, "nats-py publishes"),
    "celery": (1.0, "Celery (publishing a task to the broker)"),
    "rq": (1.0, "RQ (enqueueing a job in Redis)"),
}

# One row per setting, alike by design (the duplicates check finds their shape repeated).
KEYS: Tuple[Key, ...] = (
    _key("enabled", parse_bool, True, "Master switch: false leaves the process untouched."),
    _key("service_name", parse_str, "", "Service name on every export. Empty: "
         "OTEL_SERVICE_NAME, else derived from how the process was started: the uWSGI, "
         "gunicorn, uvicorn or hypercorn app (`app:app` -> `app`), the Flask app, the Django "
         "project, the Celery app (`celery -A proj` -> `proj`), `rq`, else the script's name "
         "(the rules, in order: Configuration.md, \"How the service name is derived\")."),
    _key("environment", parse_str, "", "Deployment environment (`deployment.environment.name`)."),
    _key("release", parse_str, "", "Version of the app (`service.version`)."),
    _key("endpoint", parse_endpoint, "http://127.0.0.1:4318", "OTLP/HTTP base URL; "
         "`/v1/traces`, `/v1/metrics` and `/v1/logs` are appended. Falls back to "
         "OTEL_EXPORTER_OTLP_ENDPOINT."),
    _key("headers", parse_mapping, {}, "Extra HTTP headers on every export, e.g. an API key: "
         "`x-api-key=secret`. Falls back to OTEL_EXPORTER_OTLP_HEADERS."),
    _key("resource_attributes", parse_mapping, {}, "Extra resource attributes "
         "(`k=v,…`). Falls back to OTEL_RESOURCE_ATTRIBUTES."),
    _key("sample_rate", parse_rate, 1.0, "Head sampling probability for new traces; an incoming "
         "sampled flag is respected. Slow and errored requests are kept regardless."),
    _key("flush_interval", parse_float, 1.0, "Seconds between exports of whatever is queued."),
    _key("batch_size", parse_int, 512, "Items (traces, log records) taken off a queue at a "
         "time; each is sent in one or more requests within `max_batch_spans` and "
         "`max_batch_bytes`."),
    _key("max_queue_size", parse_int, 2048, "Cap of each export queue in items (finished traces; "
         "log records and metrics); when full, new data is dropped and counted, the app never "
         "waits."),
    _key("max_queue_spans", parse_int, 32768, "Cap of the spans held by queued traces (about "
         "0.5-1 KiB each), whatever their number: a trace that would pass it is dropped and "
         "counted. With `max_batch_bytes`, what bounds the sensor's memory when the collector "
         "is down."),
    _key("max_batch_spans", parse_int, 4096, "Spans per export request at most (a larger trace "
         "goes alone)."),
    _key("max_batch_bytes", parse_size, 4 << 20, "Uncompressed bytes per export request at most "
         "(a larger trace goes alone); a 413 answer splits the request in halves, down to one "
         "trace, which is then dropped and counted."),
    _key("timeout", parse_float, 5.0, "Seconds allowed for one export request."),
    _key("shutdown_timeout", parse_float, 5.0, "Seconds allowed at exit (or SIGTERM) to drain "
         "the queue."),
    _key("max_spans_per_trace", parse_int, 1000, "Spans kept per trace in this process; the "
         "number dropped is recorded on the local root."),
    _key("metrics_interval", parse_float, 10.0, "Seconds between exports of metrics (runtime, "
         "requests, custom, and the sensor's own counters)."),
    _key("trace_run", parse_bool, False, "Make the whole run of the process one trace, its "
         "root span named by the script, ended and sent at exit (`spyglass run --trace`): for "
         "short programs. Its calls fold and are capped as a request's. Off (long-running "
         "workers): calls outside a trace are counted in the metrics, and only a slow or failed "
         "one is sent, as a trace of its own."),
    _key("debug", parse_bool, False, "Log the sensor's own activity at DEBUG on the `spyglass` "
         "logger (to stderr if nothing else handles it)."),
    # -- requests and errors (web frameworks) ---------------------------------------------
    _key("slow_request_time", parse_float, 1.0, "Seconds after which a request is slow; slow "
         "requests are always exported, even when head sampling dropped the trace."),
    _key("report_404", parse_bool, False, "Treat 404 responses as errors."),
    _key("report_local_vars", parse_bool, False, "Send each frame's local variables with error "
         "events (repr'd, size-capped, scrubbed)."),
    _key("ignore_paths", parse_list, (), "URL path prefixes not traced at all (health checks, "
         "static files), comma-separated."),
    _key("ignore_slow_paths", parse_list, (), "URL path prefixes never reported as slow "
         "(long polls, downloads), comma-separated."),
    _key("send_default_pii", parse_bool, False, "Send user names, e-mail addresses and client "
         "IP addresses; by default only a user's id is sent."),
    _key("scrub_keys", parse_list, (), "Extra key names (headers, query parameters, form/JSON "
         "keys, locals) whose values are replaced by [Filtered], on top of the built-in list."),
    _key("in_app_include", parse_list, (), "Module prefixes counted as the app's own code in "
         "stacks (overrides the site-packages rule)."),
    _key("in_app_exclude", parse_list, (), "Module prefixes never counted as the app's own "
         "code in stacks."),
    _key("filter_callable", parse_callable_path, "", "`module:callable` run on every error "
         "event before it is sent: return None to drop it, or the (changed) event."),
    _key("capture_unhandled", parse_bool, True, "Send exceptions nothing caught as error "
         "events: `sys.excepthook`, `threading.excepthook`, `sys.unraisablehook` and asyncio "
         "loops' exception handler. The hooks found there still run after, so the app's "
         "output and exit status stay the same."),
    _key("logging_level", parse_level, logging.WARNING, "Records at or above this level from "
         "the stdlib logging module are sent as OTLP log records."),
    _key("logging_on_error", parse_bool, False, "Send a request's log records only when the "
         "request errored or was slow."),
    # -- calls (databases, HTTP, templates) -----------------------------------------------
    _key("dbapi2_modules", parse_list, (), "Module names of other PEP 249 drivers to "
         "instrument, comma-separated."),
    _key("span_min_duration", parse_float, 0.0, "Calls faster than this many seconds are not "
         "exported as spans (they still count in the request's aggregates)."),
    _key("capture_sql_parameters", parse_bool, False, "Send SQL bind parameters (scrubbed) "
         "with statements. Off: parameters never leave the process."),
    _key("compress_repeated_calls", parse_bool, True, "Export a run of identical fast calls "
         "(an N+1 loop) as one span with a count."),
    # -- profiles -------------------------------------------------------------------------
    _key("profiling", parse_bool, False, "Sample the Python stacks of the app's threads and "
         "export them as OTLP profiles (`/v1development/profiles`): each exported trace with "
         "the samples taken inside it, linked to its spans (a head-dropped trace's are freed "
         "unless it is kept as slow or errored), and a process-wide profile every "
         "`profiling_interval`. Threads are attributed exactly; an asyncio loop's thread to "
         "the trace begun last on it, and so is a gevent-patched app's (its greenlets take "
         "turns on one OS thread). A receiver answering 404 there turns it off."),
    _key("profiling_hz", parse_float, 49.0, "Stack samples per second (wall clock), 1 to "
         "1000. Sentry and py-spy take 100. A sample costs mostly its thread's wake-up, which "
         "takes the GIL from the busy thread: at 100 a hello-world request's ratio rose by "
         "0.04-0.06 here, at 49 by 0.02-0.05 (benchmarks/bench_profiling.py; the bar is 0.03). "
         "An idle process's sampler dozes at either rate (about 0.1% of a core)."),
    _key("profiling_interval", parse_float, 60.0, "Seconds between exports of the "
         "process-wide profile (threads not idle, aggregated by stack)."),
    # -- metrics --------------------------------------------------------------------------
    _key("runtime_metrics", parse_bool, True, "Collect the process's runtime metrics "
         "(CPU, memory, threads, GC …) every metrics_interval."),
    _key("metrics_temporality", parse_temporality, "delta", "Aggregation temporality of "
         "exported sums and histograms."),
    _key("metrics_max_series", parse_int, 1000, "Cap of distinct label sets per custom metric; "
         "beyond it values go to one overflow series and one warning is logged."),
) + tuple(
    _key("timing." + name, parse_threshold, default,
         f"Slow-call threshold in seconds for {what}; false switches it off.")
    for name, (default, what) in TIMING.items()
)

KEYS_BY_NAME: Dict[str, Key] = {key.name: key for key in KEYS}

# Old names of settings -> their names now: still read, with one warning each (their
# environment variables are the new ones': dots became underscores there already).
RENAMED = {
    "logging.level": "logging_level",
}
_renames_warned = set()


def format_default(value) -> str:
    """A default as it is written in an ini file (and in Configuration.md)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ",".join(value)
    return str(value)


def format_value(key: Key, value) -> str:
    """A value of ``key`` as written in an ini file: a logging level by its name."""
    if key.parse is parse_level and isinstance(value, int):
        name = logging.getLevelName(value)
        return name if not name.startswith("Level ") else str(value)  # a level with no name
    return format_default(value)


def format_key_default(key: Key) -> str:
    return format_value(key, key.default)


def keys_markdown_table() -> str:
    """The table of Configuration.md, made from ``KEYS`` (tools/update_docs.py writes it)."""
    rows = ["| key | env var | ini key | type | default | meaning |", "|---|---|---|---|---|---|"]
    for key in KEYS:
        rows.append(f"| `{key.name}` | `{key.env}` | `{key.ini}` | {key.type_name} | "
                    f"`{format_key_default(key)}` | {key.doc} |")
    return "\n".join(rows)


# SPYGLASS_* variables that are not settings, never called unknown: the ini file's path,
# what `spyglass run` tells the command it starts (SPYGLASS_LAUNCHER, SPYGLASS_RUN_*),
# `spyglass serve`'s own settings, and those of the tests and benchmarks.
NOT_SETTINGS = frozenset(("SPYGLASS_INI", "SPYGLASS_LAUNCHER"))
NOT_SETTINGS_PREFIXES = ("SPYGLASS_RUN_", "SPYGLASS_COLLECTOR_", "SPYGLASS_TEST_",
                         "SPYGLASS_REQUIRE_", "SPYGLASS_BENCH_")
_unknown_warned = set()


def unknown_variables(environ):
    """``(variable, the closest setting's variable or None)`` for each ``SPYGLASS_*``
    variable in ``environ`` (an environment, or its variables' names) that is no setting
    (a typo, most likely)."""
    known = {key.env for key in KEYS}
    unknown = sorted(name for name in environ if name.startswith(ENV_PREFIX)
                     and name not in known and name not in NOT_SETTINGS
                     and not name.startswith(NOT_SETTINGS_PREFIXES))
    if not unknown:
        return []
    import difflib  # only when there is a typo to name

    # Compared without the prefix they all share, which would make anything look close.
    suffixes = {env[len(ENV_PREFIX):]: env for env in known}
    closest = (difflib.get_close_matches(name[len(ENV_PREFIX):], suffixes, n=1) for name in unknown)
    return [(name, suffixes[found[0]] if found else None) for name, found in zip(unknown, closest)]


def _note_unknown_variables(config, environ):
    """Each unknown ``SPYGLASS_*`` variable: a problem, and one warning per process."""
    for name, closest in unknown_variables(environ):
        hint = f"; did you mean {closest}?" if closest else ""
        config.problems.append((f"env:{name}", "", f"unknown variable, ignored{hint}"))
        if name not in _unknown_warned:
            _unknown_warned.add(name)
            log.warning("spyglass: unknown environment variable %s ignored%s", name, hint)


# OpenTelemetry's standard variables, honoured when spyglass's own are not set.
OTEL_FALLBACKS = {
    "endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT",
    "headers": "OTEL_EXPORTER_OTLP_HEADERS",
    "service_name": "OTEL_SERVICE_NAME",
    "resource_attributes": "OTEL_RESOURCE_ATTRIBUTES",
}


def attribute_name(key_name: str) -> str:
    return key_name.replace(".", "_")


# Every setting at its default, as a Config's attributes (``timing_redis``: its name's dot
# an underscore).
_DEFAULTS = {attribute_name(key.name): key.default for key in KEYS}


class Config:
    """Effective settings as attributes (``config.sample_rate``, ``config.timing_redis``).

    ``sources`` maps each key to where its value came from: default, ini:<path>:<line>,
    env:<VAR>, code.
    """

    def __init__(self):
        self.sources: Dict[str, str] = dict.fromkeys(KEYS_BY_NAME, "default")
        self.problems = []  # (source, key, message), for `spyglass testini` and `check`
        self.__dict__.update(_DEFAULTS)

    def get(self, name: str) -> Any:
        return getattr(self, attribute_name(name))

    def threshold(self, library: str):
        """Slow threshold for an instrumented library, or False when it is switched off."""
        return getattr(self, "timing_" + library, False)

    def set(self, name: str, raw: Any, source: str) -> bool:
        """Parse and set one value; on a bad value warn once and keep the default."""
        if name in RENAMED:
            name = _renamed(name, source)
        key = KEYS_BY_NAME.get(name)
        if key is None:
            self.problems.append((source, name, "unknown key"))
            log.warning("spyglass: unknown configuration key %r (from %s) ignored", name, source)
            return False
        try:
            value = key.parse(raw)
        except (TypeError, ValueError) as exc:
            self.problems.append((source, name, f"bad value {raw!r}: {exc}"))
            log.warning("spyglass: bad value %r for %s (from %s): %s; using the default %r",
                        raw, key.name, source, exc, key.default)
            return False
        setattr(self, attribute_name(name), value)
        self.sources[name] = source
        return True

    def as_dict(self) -> Dict[str, Any]:
        return {key.name: self.get(key.name) for key in KEYS}


def _renamed(old: str, source: str) -> str:
    new = RENAMED[old]
    if old not in _renames_warned:
        _renames_warned.add(old)
        log.warning("spyglass: the setting %s (from %s) is now called %s; the old name is "
                    "read for now", old, source, new)
    return new


def truthy(value) -> bool:
    """Leniently true (a per-request option, an environ value the app set): "1", "true",
    "yes", "on", "y", "t" in any case, or any other true value; everything else is false."""
    if value is None or value is False:  # the common case (no option given), first
        return False
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value)


def read_ini(path: str):
    """Yield (key name, raw value, source) from the ``[spyglass]`` section of an ini file."""
    import configparser  # only when there is an ini file: it is not free to import

    parser = configparser.RawConfigParser()
    with open(path, encoding="utf-8") as handle:
        lines = handle.read()
    parser.read_string(lines, source=path)
    if not parser.has_section(INI_SECTION):
        return
    line_of = _line_numbers(lines)
    for option, value in parser.items(INI_SECTION):
        name = option[len("spyglass."):] if option.startswith("spyglass.") else option
        yield name, value, f"ini:{path}:{line_of.get(option, '?')}"


def _line_numbers(text: str) -> Dict[str, int]:
    found = {}
    for number, line in enumerate(text.splitlines(), 1):
        option, sep, _ = line.partition("=")
        if sep and not line[:1].isspace():
            found.setdefault(option.strip().lower(), number)
    return found


def load(config_file: Optional[str] = None, environ=None, **overrides) -> Config:
    """Build the effective configuration from every source, later sources winning."""
    environ = os.environ if environ is None else environ
    config = Config()
    path = config_file or environ.get("SPYGLASS_INI")
    if path:
        try:
            for name, raw, source in read_ini(path):
                config.set(name, raw, source)
        except Exception as exc:  # OSError, configparser.Error, UnicodeDecodeError: never fatal
            config.problems.append((path, "", f"cannot read: {exc}"))
            log.warning("spyglass: cannot read config file %s (%s); ignoring it", path, exc)
    # The SPYGLASS_* names in one pass over the environment: a look-up per key would cost
    # os.environ an encoding of the name and, for most keys, a KeyError.
    ours = [name for name in environ if name.startswith(ENV_PREFIX)]
    present = frozenset(ours)
    for key in KEYS:
        otel_var = OTEL_FALLBACKS.get(key.name)
        if key.env in present:
            config.set(key.name, environ[key.env], "env:" + key.env)
        elif otel_var and environ.get(otel_var) and config.sources[key.name] == "default":
            config.set(key.name, environ[otel_var], "env:" + otel_var)
    _note_unknown_variables(config, ours)
    for name, value in overrides.items():
        config.set(name.replace("timing_", "timing.", 1) if name.startswith("timing_") else name,
                   value, "code")
    if not config.service_name:
        config.service_name = derived_service_name(environ)
        config.sources["service_name"] = "derived"
    return config
