"""The process's runtime metrics, read on the reporter thread every ``metrics_interval``.

OpenTelemetry's process and CPython semantic-convention names. The stdlib gives CPU time,
context switches and page faults (``getrusage``), threads and GC statistics; psutil adds
memory, open file descriptors and OS threads (``resource`` and psutil are both imported
here, on the reporter thread, never at startup). GC pause time comes from a
``gc.callbacks`` hook, the only thing that runs outside the reporter thread: two
``perf_counter`` calls per collection.
"""
import gc
import logging
import os
import threading
import time

from ..report import otlp
from . import aggregate

log = logging.getLogger("spyglass")

NS = 1_000_000_000


class GcPauses:
    """Total time spent in garbage collections, measured with ``gc.callbacks``."""

    def __init__(self):
        self.total = 0.0
        self._started = None
        self._clock = time.perf_counter
        gc.callbacks.append(self)

    def __call__(self, phase, info):
        if phase == "start":
            self._started = self._clock()
        elif self._started is not None:
            self.total += self._clock() - self._started
            self._started = None


class RuntimeMetrics:
    def __init__(self, config):
        self.delta = config.metrics_temporality != "cumulative"
        self.gc_pauses = GcPauses()
        self.after_fork()

    def after_fork(self):
        """Counters start again in a child (the kernel resets its rusage too)."""
        self._pid = os.getpid()
        self._start_ns = time.time_ns()
        self._previous = {}  # (name, attribute values) -> (cumulative value, time ns)
        self._last_cpu = None  # (user s, system s, wall s) for utilization
        self._process = None
        self._gc_pause_base = self.gc_pauses.total

    def collect(self):
        if self._pid != os.getpid():
            self.after_fork()
        now = time.time_ns()
        metrics = []
        metrics += self._rusage(now)
        metrics += self._psutil(now)
        metrics += self._threads(now)
        metrics += self._gc(now)
        metrics.append(self._gauge("process.uptime", "s", "The time the process has been running",
                                   [((now - self._process_start_ns()) / NS, {})], now))
        return metrics

    # -- sources ------------------------------------------------------------------------

    def _rusage(self, now):
        try:
            import resource  # here, on the reporter thread, rather than at every startup
        except ImportError:  # not POSIX
            return []
        usage = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.monotonic()
        metrics = [
            self._sum("process.cpu.time", "s", "Total CPU seconds broken down by different states",
                      [(usage.ru_utime, {"cpu.mode": "user"}),
                       (usage.ru_stime, {"cpu.mode": "system"})], now),
            self._sum("process.context_switches", "{context_switch}",
                      "Number of times the process has been context switched",
                      [(usage.ru_nvcsw, {"process.context_switch_type": "voluntary"}),
                       (usage.ru_nivcsw, {"process.context_switch_type": "involuntary"})], now),
            self._sum("process.paging.faults", "{fault}", "Number of page faults the process "
                      "has made", [(usage.ru_majflt, {"process.paging.fault_type": "major"}),
                                   (usage.ru_minflt, {"process.paging.fault_type": "minor"})], now),
        ]
        utilization = self._cpu_utilization(usage.ru_utime, usage.ru_stime, wall)
        if utilization is not None:
            metrics.append(self._gauge(
                "process.cpu.utilization", "1", "Difference in process.cpu.time since the last "
                "measurement, divided by the elapsed time and number of CPUs available",
                [(utilization[0], {"cpu.mode": "user"}), (utilization[1], {"cpu.mode": "system"})],
                now))
        return metrics

    def _cpu_utilization(self, user, system, wall):
        last, self._last_cpu = self._last_cpu, (user, system, wall)
        if last is None or wall <= last[2]:
            return None
        capacity = (wall - last[2]) * _cpus_available()
        return (user - last[0]) / capacity, (system - last[1]) / capacity

    def _psutil(self, now):
        process = self._psutil_process()
        if process is None:
            return []
        with process.oneshot():
            memory = process.memory_info()
            threads = process.num_threads()
            fds = process.num_fds() if hasattr(process, "num_fds") else None
        metrics = [
            self._updown("process.memory.usage", "By", "The amount of physical memory in use",
                         memory.rss, now),
            self._updown("process.memory.virtual", "By", "The amount of committed virtual memory",
                         memory.vms, now),
            self._updown("process.thread.count", "{thread}", "Process threads count", threads, now),
        ]
        if fds is not None:
            metrics.append(self._updown("process.open_file_descriptor.count", "{file_descriptor}",
                                        "Number of file descriptors in use by the process", fds, now))
        return metrics

    def _psutil_process(self):
        if self._process is None:
            try:
                import psutil
            except ImportError:
                self._process = False
                log.info("spyglass: psutil is not installed; memory, file descriptor and "
                         "thread count metrics are not collected")
            else:
                self._process = psutil.Process()
        return self._process or None

    def _process_start_ns(self):
        process = self._psutil_process()
        if process is not None:
            try:
                return int(process.create_time() * NS)
            except Exception:
                pass
        return self._start_ns

    def _threads(self, now):
        threads = threading.enumerate()
        dummy = sum(isinstance(t, threading._DummyThread) for t in threads)
        daemon = sum(t.daemon for t in threads) - dummy  # dummy threads report daemon=True
        return [self._updown(
            "cpython.thread.count", "{thread}", "Python threads alive, by kind (dummy: threads "
            "started outside the threading module)",
            [(len(threads) - daemon - dummy, {"cpython.thread.kind": "non_daemon"}),
             (daemon, {"cpython.thread.kind": "daemon"}),
             (dummy, {"cpython.thread.kind": "dummy"})], now)]

    def _gc(self, now):
        stats = gc.get_stats()
        by_generation = [{"cpython.gc.generation": n} for n in range(len(stats))]
        return [
            self._sum("cpython.gc.collections", "{collection}", "The number of times a "
                      "generation was collected since interpreter start",
                      [(s["collections"], g) for s, g in zip(stats, by_generation)], now),
            self._sum("cpython.gc.collected_objects", "{object}", "The total number of objects "
                      "collected inside a generation since interpreter start",
                      [(s["collected"], g) for s, g in zip(stats, by_generation)], now),
            self._sum("cpython.gc.uncollectable_objects", "{object}", "The total number of "
                      "uncollectable objects found inside a generation since interpreter start",
                      [(s["uncollectable"], g) for s, g in zip(stats, by_generation)], now),
            self._sum("cpython.gc.pause_time", "s", "Total time spent in garbage collections",
                      [(self.gc_pauses.total - self._gc_pause_base, {})], now),
        ]

    # -- encoding -------------------------------------------------------------------------

    def _sum(self, name, unit, description, values, now):
        """A monotonic sum from cumulative readings; delta temporality sends the change."""
        points = []
        for value, attrs in values:
            if not self.delta:
                points.append(otlp.number_point(value, now, self._start_ns, attrs))
                continue
            key = (name, tuple(attrs.values()))
            previous, since = self._previous.get(key, (0, self._start_ns))
            self._previous[key] = (value, now)
            points.append(otlp.number_point(max(value - previous, 0), now, since, attrs))
        temporality = aggregate.DELTA if self.delta else aggregate.CUMULATIVE
        return otlp.sum_metric(name, unit, description, points, True, temporality)

    def _updown(self, name, unit, description, values, now):
        """A current amount (OpenTelemetry's UpDownCounter): a cumulative non-monotonic sum."""
        if not isinstance(values, list):
            values = [(values, {})]
        points = [otlp.number_point(value, now, self._start_ns, attrs) for value, attrs in values]
        return otlp.sum_metric(name, unit, description, points, False, aggregate.CUMULATIVE)

    def _gauge(self, name, unit, description, values, now):
        points = [otlp.number_point(value, now, 0, attrs) for value, attrs in values]
        return otlp.gauge_metric(name, unit, description, points)


def _cpus_available():
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1

