"""Exceptions nothing caught: each becomes an error event (``handled`` false, with its frames
and the hook that met it as ``mechanism``), and the hook that was there before runs after
ours, so that what the app prints and its exit status stay exactly as they were.

What reaches each hook: ``sys.excepthook``, the exception that ends the main thread (then
exit 1; not at an interactive prompt); ``threading.excepthook``, one that ends a thread;
``sys.unraisablehook``, one Python cannot raise (in ``__del__``, a callback …);
``BaseEventLoop.call_exception_handler``, what a loop reports (a task that failed and was
never awaited, a callback's error …).

The sys and threading hooks go in as the sensor starts (both modules are loaded by then);
the loop's when the app imports asyncio. Patching the loop's dispatch, not setting a
handler, leaves ``loop.set_exception_handler`` to the app: its handler (or asyncio's
default, which logs) runs after ours whenever it was set. Python keeps one
``sys.excepthook``: a hook the app sets later replaces ours, unless it calls the one it
found, as well-behaved hooks do.

Each report is queued before the exit drains the queue (atexit): ``sys.excepthook`` runs
before atexit, a thread's hook before threading joins the threads at exit. An unraisable
exception met while the interpreter is finalizing (past the drain) is not reported. Only
``Exception`` is: a ``KeyboardInterrupt`` or ``SystemExit`` is the app's way out.
``capture_unhandled = false`` leaves all four alone.
"""
import logging
import threading

from ._patch import Patch

SUPPORTS = None  # the standard library's own
TIMING = None  # switched off by capture_unhandled = false instead
PATCHES = (
    Patch("sys", excepthook="reporting_excepthook", unraisablehook="reporting_unraisable"),
    Patch("threading", excepthook="reporting_thread_exit"),
    Patch("asyncio.base_events", "BaseEventLoop",
          call_exception_handler="reporting_loop_exception"),
)

log = logging.getLogger("spyglass")

_busy = threading.local()  # a report under way on this thread: no second one inside it


# Each hook goes in front of the one found there, unless there is none (an embedding may
# have set it to None: then there is nothing to chain to, and it is left alone).

def reporting_excepthook(excepthook, agent):
    if excepthook is None:
        return None
    import sys

    def sys_excepthook(exc_type, exc_value, exc_traceback):
        if not hasattr(sys, "ps1"):  # the prompt's mistakes are not the app's
            _report(exc_value, "sys.excepthook")
        excepthook(exc_type, exc_value, exc_traceback)

    return sys_excepthook


def reporting_unraisable(unraisablehook, agent):
    if unraisablehook is None:
        return None
    import sys

    def sys_unraisablehook(unraisable):
        if not sys.is_finalizing():
            _report(unraisable.exc_value, "sys.unraisablehook",
                    {"unraisable": {"message": unraisable.err_msg or "Exception ignored in"}})
        unraisablehook(unraisable)

    return sys_unraisablehook


def reporting_thread_exit(excepthook, agent):
    if excepthook is None:
        return None

    def threading_excepthook(args):
        thread = args.thread
        _report(args.exc_value, "threading.excepthook",
                {"thread": {"name": thread.name}} if thread is not None else None)
        excepthook(args)

    return threading_excepthook


def reporting_loop_exception(call_exception_handler, agent):
    def reporting(self, *args, **kwargs):
        context = args[0] if args else kwargs.get("context")
        exc = context.get("exception") if isinstance(context, dict) else None
        if not isinstance(exc, Exception):
            return call_exception_handler(self, *args, **kwargs)
        capture = _report(exc, "asyncio", {"asyncio": {"message": str(context.get("message", ""))}})
        if capture is None:
            return call_exception_handler(self, *args, **kwargs)
        # asyncio's default handler logs the exception: the logging integration is not to
        # report it a second time.
        capture.note_propagated(exc)
        try:
            return call_exception_handler(self, *args, **kwargs)
        finally:
            capture.forget_propagated(exc)

    return reporting


def _report(exc, mechanism, contexts=None):
    """Send ``exc`` as an unhandled error; the capture module when it was sent (or found
    sent already), None when there was nothing to do. Never raises."""
    if not isinstance(exc, Exception) or getattr(_busy, "active", False):
        return None
    _busy.active = True
    try:
        from ..errors import capture  # the error path only: nothing of it at startup

        capture.capture_uncaught(exc, mechanism, contexts)
        return capture
    except Exception:
        log.debug("spyglass: could not report an exception from %s", mechanism, exc_info=True)
        return None
    finally:
        _busy.active = False
