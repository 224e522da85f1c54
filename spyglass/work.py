"""Units of work outside requests: ``spyglass.background_task(name)`` and the trace of a
whole run (``spyglass run --trace``, the ``trace_run`` setting).

Outside any trace the calls an app makes are timed and counted, and only a slow or failed
one is exported, alone (see ``spyglass.instrument._calls``). Code that wants whole traces
names its units of work: each is a root span (a child span inside an active trace), under
which calls fold and are capped as in a request's trace.
"""
import functools
import inspect
import sys


class BackgroundTask:
    """``spyglass.background_task(name)``: a decorator (of a function or an ``async def``)
    and a context manager (``with``, ``async with``), one span per call or block. A new
    one per block: the object holds the scope of the block it is in."""

    __slots__ = ("name", "_scope")

    def __init__(self, name):
        self.name = str(name)
        self._scope = None

    def __call__(self, function):
        name = self.name
        if inspect.iscoroutinefunction(function):
            @functools.wraps(function)
            async def run_async(*args, **kwargs):
                with BackgroundTask(name):
                    return await function(*args, **kwargs)

            return run_async

        @functools.wraps(function)
        def run(*args, **kwargs):
            with BackgroundTask(name):
                return function(*args, **kwargs)

        return run

    def __enter__(self):
        from . import agent

        running = agent.get()
        if running is not None:
            try:
                self._scope = running.tracer.start_active_span(self.name)
            except Exception:
                _failed()
        return self

    def __exit__(self, exc_type, exc, traceback):
        scope, self._scope = self._scope, None
        if scope is not None:
            try:
                scope.__exit__(exc_type, exc, traceback)  # records the exception, finishes
            except Exception:
                _failed()
        return False

    async def __aenter__(self):
        return self.__enter__()

    async def __aexit__(self, exc_type, exc, traceback):
        return self.__exit__(exc_type, exc, traceback)

    @property
    def span(self):
        """The block's span (None outside the block or without the sensor)."""
        return self._scope.span if self._scope is not None else None


def trace_the_run(running):
    """Make the rest of this process's run one trace, its root active on this (the main)
    thread, named by the script; it ends at exit, before the last export, marked with the
    exception that ended the run, if one did."""
    scope = running.tracer.start_active_span(run_name())

    def end():
        span = scope.span
        if not span.end_ns:
            error = getattr(sys, "last_value", None)  # set by the interpreter before atexit
            if isinstance(error, Exception):
                span.record_exception(error)
            span.finish()
        return []  # no metrics of its own

    running.reporter.add_final(end)
    return scope


def run_name():
    """What this process runs: the script's stem, the module of ``-m``, else ``python``."""
    from .service_name import command_line, program_name

    program, _ = command_line()
    return program_name(program) if program else "python"


_logged = []


def _failed():
    import logging

    log = logging.getLogger("spyglass")
    if not _logged:
        _logged.append(True)
        log.exception("spyglass: error in a background_task (logged once; the app's code "
                      "runs on)")
    else:
        log.debug("spyglass: error in a background_task", exc_info=True)
