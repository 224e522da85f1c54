"""The sensor in one process: configuration, tracer, reporter. Started exactly once,
whether by the autowrapt groups (any combination), ``spyglass.init()`` or ``spyglass run``.

Starting is cheap on purpose: it reads the configuration and registers lazy import hooks.
The tracer is built when first needed, the reporter's thread when there is something to
send, httpx is imported on that thread.
"""
import logging
import os
import sys
import threading

from . import config as config_module
from . import process, service_name

log = logging.getLogger("spyglass")

_lock = threading.RLock()


class Agent:
    def __init__(self, config, started_by):
        from .report.reporter import Reporter

        self.config = config
        self.started_by = [started_by]
        self.instrumented = []  # library names patched so far, in order
        self.reporter = Reporter(config, self._resource_attributes)
        self.metrics = None
        if inside_uwsgi():
            self.reporter.hold()  # see spyglass.instrument.uwsgi
        if config.metrics_interval > 0:
            from . import metrics

            self.metrics = metrics.enable(config)
            self.reporter.add_periodic(self._collect_metrics, config.metrics_interval)
            # Folding what the app recorded, four times a second, keeps the values waiting
            # few (at most metrics.MAX_PENDING: memory stays flat under a burst).
            self.reporter.add_periodic(self.metrics.fold, min(0.25, config.metrics_interval))
            self.reporter.add_final(self.metrics.collect_at_exit)
        self._add_process_snapshot()
        self._profiler = None
        if config.profiling:
            # The sampler is made and started on the reporter thread, a second after start
            # (and after a fork), never on the app's.
            self.reporter.add_periodic(self._profile, 1.0)
            self.reporter.add_final(self._stop_profiling)
        self._tracer = None
        self._service_name_settled = False
        self._scrubber = None

    def settle_service_name(self):
        """A derived service name, derived once more before anything is sent (on the
        reporter thread): uWSGI's options and a DJANGO_SETTINGS_MODULE set by manage.py or
        a wsgi.py exist only after start."""
        if self._service_name_settled:
            return
        self._service_name_settled = True
        if self.config.sources.get("service_name") == "derived":
            self.config.service_name = service_name.derived()

    @property
    def scrubber(self):
        """The one ``redact.scrub.Scrubber`` of this agent's settings (``scrub_keys``), made
        when first needed: errors, SQL parameters, URLs and slow calls' stacks all use it."""
        scrubber = self._scrubber
        if scrubber is None:
            from .redact.scrub import Scrubber

            scrubber = self._scrubber = Scrubber(extra_keys=self.config.scrub_keys)
        return scrubber

    def _add_process_snapshot(self):
        """Sent a second after start (or a fork), when the app has imported its libraries,
        and again whenever instrumentations change (made on the reporter thread)."""
        snapshot = None

        def collect():
            nonlocal snapshot
            if snapshot is None:
                from .metrics.snapshot import ProcessSnapshot

                self.settle_service_name()
                snapshot = ProcessSnapshot(self)
            return snapshot.collect()

        every = self.config.metrics_interval or 60.0
        self.reporter.add_periodic(collect, every, first_delay=min(1.0, every))

    def resume_in_child(self):
        """In a process forked in C (a uWSGI worker, from its post-fork hook): new trace
        ids, fresh metrics, and the reporter thread running, before any request."""
        process.check_fork()
        if self.metrics is not None and self.metrics.generation != process.generation:
            self.metrics.after_fork()
        self.reporter.release()

    def _profile(self):
        profiler = self._profiler
        if profiler is None:
            from .profile.sampler import Profiler

            profiler = self._profiler = Profiler(self.config, self.reporter)
        profiler.tick()

    def _stop_profiling(self):
        if self._profiler is not None:
            self._profiler.at_exit()

    def _collect_metrics(self):
        """Every metric of this process, in one export (on the reporter thread)."""
        own = self.reporter.self_metrics()
        if self._profiler is not None:
            own += self._profiler.self_metrics()
        return own + self.metrics.collect()

    def _resource_attributes(self):
        # On the reporter thread, when first needed: platform and socket stay off startup.
        from .report.resource import resource_attributes

        self.settle_service_name()
        return resource_attributes(self.config)

    @property
    def tracer(self):
        tracer = self._tracer
        if tracer is None:
            with _lock:
                if self._tracer is None:
                    # Importing the tracer imports opentracing, whose import hook makes this
                    # tracer the global one: it asks for it, and so builds it, first.
                    from .trace.tracer import Tracer

                    if self._tracer is None:
                        reporter = self.reporter
                        tracer_class = Tracer
                        export, export_lone_root = reporter.submit_trace, reporter.submit_root
                        if self.config.profiling:
                            from .profile import registry

                            tracer_class = registry.ProfilingTracer
                            export, export_lone_root = registry.exporters(export,
                                                                          export_lone_root)
                        self._tracer = tracer_class(
                            export=export, export_lone_root=export_lone_root,
                            sample_rate=self.config.sample_rate,
                            max_spans_per_trace=self.config.max_spans_per_trace)
                tracer = self._tracer
        return tracer


def get():
    """The running agent, or None."""
    return process.agent


def start(started_by="code", config_file=None, on_start=None, **settings):
    """Start the sensor once per process; later calls only note who asked. Never raises.
    ``on_start(agent)`` runs once, when the agent is made (spyglass.bootstrap registers the
    instrumentation's import hooks there)."""
    with _lock:
        running = process.agent
        if running is not None:
            if started_by not in running.started_by:
                running.started_by.append(started_by)
            return running
        try:
            config = config_module.load(config_file=config_file, **settings)
            if config.debug:
                _enable_debug_logging()
            if not config.enabled:
                log.info("spyglass: disabled by configuration (%s)", config.sources["enabled"])
                return None
            if service_name.sends_nothing():
                log.debug("spyglass: off in a helper process (a development server's "
                          "reloader, multiprocessing's resource tracker): the processes it "
                          "serves run the app, and the sensor")
                return None
            running = process.agent = Agent(config, started_by)
            if on_start is not None:
                on_start(running)
            from .report import signals

            signals.drain_on_sigterm(running.reporter)
            log.debug("spyglass: started by %s, sending to %s as %r", started_by,
                      config.endpoint, config.service_name)
        except Exception:
            log.exception("spyglass: could not start; the app runs without it")
            process.agent = None
        return process.agent


def inside_uwsgi():
    """True in a process started by the uwsgi binary, known before its ``uwsgi`` module
    exists: it exports UWSGI_ORIGINAL_PROC_NAME and embeds Python without a command line
    (a Python subprocess inheriting the variable has one)."""
    return "UWSGI_ORIGINAL_PROC_NAME" in os.environ and not getattr(sys, "orig_argv", None)


def _enable_debug_logging():
    logger = logging.getLogger("spyglass")
    logger.setLevel(logging.DEBUG)
    if not any(type(handler) is not logging.NullHandler for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s spyglass[%(process)d] %(message)s"))
        logger.addHandler(handler)
