"""Metrics: request and database call durations, custom instruments, runtime metrics.

Public API (each call is cheap, thread-safe, never raises, and does nothing when the sensor
is not running or metrics are off)::

    from spyglass import metrics
    metrics.counter("orders.placed", 1, labels={"shop": "eu"})
    metrics.gauge("cache.entries", len(cache))
    metrics.histogram("payload.size", len(body), labels={"kind": "json"}, unit="By")

Instrumentation calls ``record_request``, ``record_db_call``, ``record_http_client`` and
``record_template``.

The app's side only appends a tuple to a deque: no lock to wait for (nothing a fork in C
could leave held), no syscall. The reporter thread folds what was recorded into the
aggregates every ``flush_interval`` and exports them every ``metrics_interval`` seconds
with ``metrics_temporality`` (delta by default). At most ``MAX_PENDING`` values wait to
be folded; beyond that the app's thread folds them itself (``fold_when_full``), or, when
the reporter thread is folding at that moment, drops the value and counts it. Each metric
keeps at most ``metrics_max_series`` label sets; beyond that, values go to one overflow
series and one warning is logged.
"""
import collections
import logging
import os
import threading
import time

from ..report import otlp
from .. import process
from . import aggregate

log = logging.getLogger("spyglass")

# How long the last collection at exit waits for the aggregates' lock (held by the reporter
# thread while it folds, or by this very thread if a signal handler interrupted it there).
EXIT_LOCK_TIMEOUT = 1.0

__all__ = ["counter", "gauge", "histogram", "record_request", "record_db_call",
           "record_http_client", "record_template"]

# Values recorded but not yet folded, at most (one fold per flush_interval drains them).
MAX_PENDING = 8192
# Values the app's thread folds when MAX_PENDING wait: a pause of a tenth of a millisecond
# or so, not the few milliseconds of folding them all.
APP_FOLD = 256

# The running registry, or None: every entry point tests this first.
_registry = None

# What the app's side appends: (instrument, key, value), or for custom metrics
# (kind, name, labels items, value, options).
_REQUEST, _DB_CALL = "request", "db_call"
_HTTP_CLIENT, _TEMPLATE = "http_client", "template"

# Each status class's text made once, not once per code: this runs at every startup.
_STATUS_CLASS = {code: status_class
                 for hundreds, status_class in enumerate(("1xx", "2xx", "3xx", "4xx", "5xx"), 1)
                 for code in range(hundreds * 100, hundreds * 100 + 100)}


# record_request and record_db_call are twins written out, not one function called by both:
# they run once per request and once per query, where a call more shows (the two are held
# alike by tests/test_written_out_copies.py).

def record_request(route: str, method: str, status_code: int, duration_s: float) -> None:
    """One finished server request: ``http.server.request.duration`` by route, method and
    status class ("2xx")."""
    registry = _registry
    if registry is not None:
        if registry.generation != process.generation:
            registry.after_fork()
        pending = registry.pending
        if len(pending) < MAX_PENDING:
            pending.append((_REQUEST, (route, method, status_code), duration_s))
        else:
            registry.fold_when_full((_REQUEST, (route, method, status_code), duration_s))


def record_db_call(system: str, operation: str, duration_s: float) -> None:
    """One finished database call: ``db.client.operation.duration`` by system and operation."""
    registry = _registry
    if registry is not None:
        if registry.generation != process.generation:
            registry.after_fork()
        pending = registry.pending
        if len(pending) < MAX_PENDING:
            pending.append((_DB_CALL, (system, operation), duration_s))
        else:
            registry.fold_when_full((_DB_CALL, (system, operation), duration_s))


# An outbound request or a template's render takes tens of microseconds at the least: the
# call more of one shared function (about 400 instructions, ~0.05 us, counted with callgrind)
# is nothing beside it, so these two are not written out.

def record_http_client(method: str, address, port, status_code, error_type,
                       duration_s: float) -> None:
    """One finished outbound HTTP request: ``http.client.request.duration`` by method,
    server address and port, status class ("2xx", as the server's) and, for a request that
    got no response, the exception's type, and for a 5xx its status (``error.type``). Never
    the URL's path."""
    _record_duration(_HTTP_CLIENT, (method, address, port, status_code, error_type), duration_s)


def record_template(engine: str, duration_s: float) -> None:
    """One finished template render: ``spyglass.template.render.duration`` by engine."""
    _record_duration(_TEMPLATE, engine, duration_s)


def _record_duration(instrument, key, duration_s):
    """What record_request and record_db_call do, written out there (held equal by
    tests/test_written_out_copies.py)."""
    registry = _registry
    if registry is not None:
        if registry.generation != process.generation:
            registry.after_fork()
        pending = registry.pending
        if len(pending) < MAX_PENDING:
            pending.append((instrument, key, duration_s))
        else:
            registry.fold_when_full((instrument, key, duration_s))


def counter(name: str, value=1, labels=None, *, unit: str = "", description: str = "") -> None:
    """Add ``value`` (>= 0) to the monotonic counter ``name``."""
    if _registry is not None:
        _record_custom("counter", name, value, labels, unit, description, None)


def gauge(name: str, value, labels=None, *, unit: str = "", description: str = "") -> None:
    """Set the gauge ``name`` to ``value``; the last value set is exported every interval."""
    if _registry is not None:
        _record_custom("gauge", name, value, labels, unit, description, None)


def histogram(name: str, value, labels=None, *, unit: str = "", description: str = "",
              boundaries=None) -> None:
    """Record ``value`` in the histogram ``name``. ``boundaries`` (ascending bucket upper
    bounds) is used when the histogram is first created; OpenTelemetry's defaults otherwise."""
    if _registry is not None:
        _record_custom("histogram", name, value, labels, unit, description, boundaries)


def _record_custom(kind, name, value, labels, unit, description, boundaries):
    registry = _registry
    if registry is None:
        return
    try:
        if registry.generation != process.generation:
            registry.after_fork()
        # The labels' items are copied now: the caller may reuse and change its dict.
        items = tuple(labels.items()) if labels else ()
        pending = registry.pending
        if len(pending) < MAX_PENDING:
            pending.append((kind, name, items, value, (unit, description, boundaries)))
        else:
            registry.fold_when_full((kind, name, items, value, (unit, description, boundaries)))
    except Exception:
        _failed(kind)


def _status_class(status_code) -> str:
    try:
        code = int(status_code)
    except (TypeError, ValueError):
        return "other"
    return _STATUS_CLASS.get(code, "other")


_failures_logged = set()


def _failed(where):
    if where not in _failures_logged:
        _failures_logged.add(where)
        log.warning("spyglass: metrics.%s failed (logged once)", where, exc_info=True)


def _labels_key(items):
    """Label items in a canonical order, so {"a", "b"} and {"b", "a"} are one series."""
    if not items:
        return ()
    try:
        key = tuple(sorted(items))
        hash(key)
        return key
    except TypeError:  # unhashable or unorderable values: keep their text
        return tuple(sorted((str(k), str(v)) for k, v in items))


class Registry:
    """Every instrument of this process; folds what the app recorded, collects for export."""

    def __init__(self, config, runtime=None):
        self.temporality = (aggregate.CUMULATIVE if config.metrics_temporality == "cumulative"
                            else aggregate.DELTA)
        self.max_series = config.metrics_max_series
        self.runtime = runtime
        self.requests = aggregate.Histogram(
            "http.server.request.duration", "s", "Duration of HTTP server requests",
            _request_attributes,
            self.max_series, self.temporality, aggregate.DURATION_BOUNDARIES)
        self.db_calls = aggregate.Histogram(
            "db.client.operation.duration", "s", "Duration of database client operations",
            _named("db.system", "db.operation.name"),
            self.max_series, self.temporality, aggregate.DURATION_BOUNDARIES)
        self.http_client = aggregate.Histogram(
            "http.client.request.duration", "s", "Duration of HTTP client requests",
            _http_client_attributes,
            self.max_series, self.temporality, aggregate.DURATION_BOUNDARIES)
        self.templates = aggregate.Histogram(
            "spyglass.template.render.duration", "s", "Duration of template renders",
            _named("spyglass.template.engine"),
            self.max_series, self.temporality, aggregate.DURATION_BOUNDARIES)
        self._custom = {}
        self._warned = set()
        self.after_fork()

    def after_fork(self):
        """Fresh state in a forked child: the parent's data is the parent's to export."""
        self.generation = process.generation
        self._pid = os.getpid()
        self.pending = collections.deque()
        self.dropped = 0
        self._start_ns = time.time_ns()
        # The reporter thread's and at-exit's; the app's only without waiting (fold_when_full)
        self._lock = threading.Lock()
        for instrument in self.instruments():
            instrument.reset()
        if self.runtime is not None:
            self.runtime.after_fork()

    def instruments(self):
        return ([self.requests, self.db_calls, self.http_client, self.templates]
                + list(self._custom.values()))

    def fold_when_full(self, event):
        """On the app's thread, when MAX_PENDING values wait (the reporter thread kept busy,
        by exports, by the GIL): fold the oldest ``APP_FOLD`` here, then keep ``event``; it
        is dropped and counted only when the reporter thread is folding at that moment.
        Under such load only: each value then costs its own fold (about half a microsecond)."""
        if not self._lock.acquire(blocking=False):
            self.dropped += 1
            return
        try:
            self._fold(APP_FOLD)
        finally:
            self._lock.release()
        self.pending.append(event)

    # -- on the reporter thread (or at exit) ---------------------------------------------

    def fold(self):
        """Move what the app recorded into the aggregates. Returns no metrics (it runs as
        a periodic task between exports)."""
        if self._pid != os.getpid():  # a fork in C nobody told us about
            self.after_fork()
        with self._lock:
            self._fold()
        return []

    def _fold(self, most=None):
        pending = self.pending
        for _ in range(len(pending) if most is None else min(most, len(pending))):
            event = pending.popleft()
            try:
                if event[0] is _REQUEST:
                    route, method, status = event[1]
                    status_class = _STATUS_CLASS.get(status) or _status_class(status)
                    self.requests.record((route, method, status_class), float(event[2]))
                elif event[0] is _DB_CALL:
                    self.db_calls.record(event[1], float(event[2]))
                elif event[0] is _HTTP_CLIENT:
                    method, address, port, status, error_type = event[1]
                    status_class = None if status is None else (
                        _STATUS_CLASS.get(status) or _status_class(status))
                    self.http_client.record((method, address, port, status_class, error_type),
                                            float(event[2]))
                elif event[0] is _TEMPLATE:
                    self.templates.record((event[1],), float(event[2]))
                else:
                    self._fold_custom(*event)
            except Exception:
                self._warn_once(("bad", event[0]), "spyglass: a %s value could not be recorded "
                                "(%r)", event[0], event[1:3])

    def _fold_custom(self, kind, name, items, value, options):
        instrument = self._custom.get(name) or self._create(kind, name, *options)
        if instrument.kind != kind:
            self._warn_once((name, kind), "spyglass: metric %r is a %s; %s values are ignored",
                            name, instrument.kind, kind)
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ValueError(value)
        if kind == "counter" and value < 0:
            self._warn_once((name, "negative"), "spyglass: counter %r cannot decrease; "
                            "negative values are ignored", name)
            return
        instrument.record(_labels_key(items), value)

    def _create(self, kind, name, unit, description, boundaries):
        extra = {"boundaries": boundaries} if kind == "histogram" and boundaries else {}
        instrument = aggregate.KINDS[kind](str(name), unit, description, dict,
                                           self.max_series, self.temporality, **extra)
        self._custom[name] = instrument
        return instrument

    def _warn_once(self, what, message, *args):
        if what not in self._warned:
            self._warned.add(what)
            log.warning(message, *args)

    def collect(self, runtime=True, lock_timeout=-1):
        """Every metric with data, as OTLP Metric dicts (none if the lock could not be had
        within ``lock_timeout`` seconds: at exit, nothing may wait for ever)."""
        if self._pid != os.getpid():
            self.after_fork()
        if not self._lock.acquire(timeout=lock_timeout):
            return []
        try:
            self._fold()
            metrics = [metric for metric in (i.collect() for i in self.instruments()) if metric]
        finally:
            self._lock.release()
        if self.dropped:
            self._warn_once("dropped", "spyglass: metric values recorded faster than they can "
                            "be aggregated; some were dropped (counted in spyglass.metrics.dropped)")
            metrics.append(otlp.sum_metric(
                "spyglass.metrics.dropped", "{value}", "Metric values dropped before aggregation",
                [otlp.number_point(self.dropped, time.time_ns(), self._start_ns)]))
        if runtime and self.runtime is not None:
            metrics.extend(self.runtime.collect())
        return metrics

    def collect_at_exit(self):
        """What was recorded since the last export (no runtime metrics: a process that
        recorded nothing sends nothing at exit)."""
        return self.collect(runtime=False, lock_timeout=EXIT_LOCK_TIMEOUT)


def _request_attributes(key):
    """A request series' attributes: no ``http.route`` for a request no route matched."""
    route, method, status_class = key
    attributes = {"http.request.method": method, "http.response.status_class": status_class}
    if route:
        attributes["http.route"] = route
    return attributes


def _http_client_attributes(key):
    """An outbound request series' attributes; those not known (no port, no response) absent."""
    attributes = dict(zip(("http.request.method", "server.address", "server.port",
                           "http.response.status_class", "error.type"), key))
    return {name: value for name, value in attributes.items() if value is not None}


def _named(*names):
    def attributes_of(key):
        return dict(zip(names, key))

    return attributes_of


def enable(config):
    """Start aggregating (called once by the agent when metrics_interval > 0)."""
    global _registry
    runtime = None
    if config.runtime_metrics:
        from .runtime import RuntimeMetrics

        runtime = RuntimeMetrics(config)
    _registry = Registry(config, runtime)
    return _registry


def disable():
    global _registry
    _registry = None


def _after_fork_in_child():
    registry = _registry
    if registry is not None:
        registry.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
