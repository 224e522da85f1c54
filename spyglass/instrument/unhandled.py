"""Exceptions nothing caught: each becomes an error event (``handled`` false, with its frames
and the hook that met it as ``mechanism``), and the hook that was there before runs after
ours, so that what the app prints and its exit status stay exactly as they were.

==============================================================  =============================
patched                                                         what reaches it
==============================================================  =============================
``sys.excepthook``                                              the exception that ends the
                                                                main thread (then exit 1);
                                                                not at an interactive prompt
``threading.excepthook``                                        one that ends a thread
``sys.unraisablehook``                                          one Python cannot raise (in
                                                                ``__del__``, a callback …)
``asyncio.base_events.BaseEventLoop.call_exception_handler``    what a loop reports: a task
                                                                that failed and was never
                                                                awaited, a callback's error …
==============================================================  =============================

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

log = logging.getLogger("spyglass")

_ORIGINAL = "__spyglass_original__"
_busy = threading.local()  # a report under way on this thread: no second one inside it


def install(agent, module):
    _INSTALLERS[module.__name__](module)


def _hook_sys(sys):
    excepthook = sys.excepthook
    if _is_free(excepthook):
        def sys_excepthook(exc_type, exc_value, exc_traceback):
            if not hasattr(sys, "ps1"):  # the prompt's mistakes are not the app's
                _report(exc_value, "sys.excepthook")
            excepthook(exc_type, exc_value, exc_traceback)

        sys.excepthook = _chained(sys_excepthook, excepthook)

    unraisablehook = sys.unraisablehook
    if _is_free(unraisablehook):
        def sys_unraisablehook(unraisable):
            if not sys.is_finalizing():
                _report(unraisable.exc_value, "sys.unraisablehook",
                        {"unraisable": {"message": unraisable.err_msg or "Exception ignored in"}})
            unraisablehook(unraisable)

        sys.unraisablehook = _chained(sys_unraisablehook, unraisablehook)


def _hook_threading(threading_module):
    excepthook = threading_module.excepthook
    if not _is_free(excepthook):
        return

    def threading_excepthook(args):
        thread = args.thread
        _report(args.exc_value, "threading.excepthook",
                {"thread": {"name": thread.name}} if thread is not None else None)
        excepthook(args)

    threading_module.excepthook = _chained(threading_excepthook, excepthook)


def _hook_asyncio(base_events):
    import wrapt

    loop_class = base_events.BaseEventLoop
    if getattr(vars(loop_class)["call_exception_handler"], "_self_spyglass", False):
        return

    def call_exception_handler(wrapped, instance, args, kwargs):
        context = args[0] if args else kwargs.get("context")
        exc = context.get("exception") if isinstance(context, dict) else None
        if not isinstance(exc, Exception):
            return wrapped(*args, **kwargs)
        capture = _report(exc, "asyncio", {"asyncio": {"message": str(context.get("message", ""))}})
        if capture is None:
            return wrapped(*args, **kwargs)
        # asyncio's default handler logs the exception: the logging integration is not to
        # report it a second time.
        capture.note_propagated(exc)
        try:
            return wrapped(*args, **kwargs)
        finally:
            capture.forget_propagated(exc)

    wrapt.wrap_function_wrapper(loop_class, "call_exception_handler", call_exception_handler)
    vars(loop_class)["call_exception_handler"]._self_spyglass = True  # on the wrapper only


_INSTALLERS = {"sys": _hook_sys, "threading": _hook_threading,
               "asyncio.base_events": _hook_asyncio}


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


def _chained(hook, previous):
    setattr(hook, _ORIGINAL, previous)
    return hook


def _is_free(hook):
    """True for a hook ours can go in front of: one that is there (an embedding may have
    set it to None) and not ours already."""
    return hook is not None and getattr(hook, _ORIGINAL, None) is None
