"""spyglass's own threads (the reporter, the profiler, the SIGTERM watch): daemon threads with
the asynchronous signals blocked, which go on running whatever the app does, under gevent too,
and which a fork never waits for.

Our threads block the asynchronous signals: the kernel hands a process-directed signal to
any thread that does not block it, and one taken by our thread sets Python's flag while the
main thread, blocked in C (a pool worker waiting on a semaphore), never looks.

Once gevent has monkey-patched ``threading``, a ``threading.Thread`` is a greenlet: it runs
only when the app's greenlets yield, and a call that blocks in it (a pipe's read, a wait on
a lock made before the patching) stops every greenlet of the process. A thread of ours then
runs on an OS thread of its own, started with the ``start_new_thread`` gevent keeps, unless
what it waits on is gevent's own (a reporter made after the patching, by
``spyglass.init()`` after ``patch_all()`` or in a child forked since): gevent's primitives
cannot be shared with another OS thread, so that one is a greenlet like the app's, and waits
as they do.

A thread of ours imports on first use (the reporter: httpx, when it first exports), and
``os.fork`` may come at any moment of that import: a gunicorn or Celery master forking a
worker. The thread is not in the child, so the import never finishes there, and the module
locks it held would hang the child's first import of those modules. Rather than make the
fork wait for the import (seconds, when the app's threads share the GIL with it), the child
forgets what did not finish (``forget_unfinished_imports``): it is imported afresh there
when next needed.
"""
import _thread
import logging
import os
import signal
import sys
import threading
import time

try:
    # signal's C half: the same functions on plain numbers. signal's own wrap each number
    # in its Signals enum, which made the two masks of a thread start cost 0.4 ms.
    import _signal as _signal_numbers
except ImportError:
    _signal_numbers = signal

# Faults must stay deliverable to the thread that caused them; the rest are blocked.
_SYNCHRONOUS = {"SIGKILL", "SIGSTOP", "SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGTRAP",
                "SIGSYS", "SIGABRT"}
_asynchronous = None  # the numbers of the other signals, once asked for


# Our OS threads now running, by the id the import system's module locks know them by.
_running = set()


def new(target, name, cooperative=False):
    """A daemon thread named ``name`` that runs ``target()`` once started (``start()``,
    ``ident``, ``is_alive()``). ``cooperative``: what ``target`` waits on is gevent's."""
    monkey = gevent_patched()
    if monkey is None:
        return MaskedThread(target=target, name=name, daemon=True)
    if cooperative:
        return threading.Thread(target=target, name=name, daemon=True)  # a greenlet
    return OSThread(target, name, monkey)


class MaskedThread(threading.Thread):
    """A thread that starts with the asynchronous signals blocked (a new thread inherits
    the mask of the one that starts it, which gets its own back at once)."""

    def start(self):
        with _async_signals_blocked():
            threading.Thread.start(self)

    def run(self):
        _run_as_ours(super().run)

    def _delete(self):
        # As threading's, by this thread's own id: once gevent has patched threading (a
        # gunicorn gevent worker patches after our threads start), threading.get_ident
        # names a greenlet, and a thread of ours that ends (the profiler, stopped at exit)
        # would print a KeyError on stderr.
        with threading._active_limbo_lock:
            threading._active.pop(self.ident, None)


def _run_as_ours(target):
    ident = _thread.get_ident()  # as importlib's module locks ask (gevent's, if patched)
    _running.add(ident)
    try:
        target()
    finally:
        _running.discard(ident)


def forget_unfinished_imports():
    """In a forked child: drop the module locks our threads held at the fork, and the
    modules whose import they had begun (with the submodules loaded under them so far), so
    that the next import of them runs afresh instead of waiting for a thread that is not
    here. A greenlet of ours is not among them: it is in the child, and goes on."""
    lost = set(_running)
    _running.clear()
    if not lost:
        return
    try:
        from importlib import _bootstrap

        locks = _bootstrap._module_locks
        unfinished = []
        for name, ref in list(locks.items()):
            lock = ref()
            if lock is not None and getattr(lock, "owner", None) in lost:
                del locks[name]
                unfinished.append(name)
        for name in unfinished:
            below = name + "."
            for loaded in [loaded for loaded in sys.modules
                           if loaded == name or loaded.startswith(below)]:
                del sys.modules[loaded]
    except Exception:  # another interpreter's importlib: the child may hang on that import
        logging.getLogger("spyglass").warning(
            "spyglass: could not undo an import under way at a fork", exc_info=True)


os.register_at_fork(after_in_child=forget_unfinished_imports)


def is_current(thread):
    """Whether the caller runs on ``thread`` (one that ``new`` made)."""
    return thread is not None and thread.ident == threading.get_ident()


def sleep(seconds):
    """``time.sleep`` as the interpreter has it (gevent's, on an OS thread of ours, would
    make that thread a hub of its own)."""
    monkey = gevent_patched()
    if monkey is None:
        time.sleep(seconds)
    else:
        monkey.get_original("time", "sleep")(seconds)


def os_lock():
    """A lock of the interpreter's own, which an OS thread of ours can wait on (gevent's,
    once it patched threading, would wait as a greenlet does)."""
    monkey = gevent_patched()
    if monkey is None:
        return threading.Lock()
    return monkey.get_original("_thread", "allocate_lock")()


def is_gevents(primitive):
    """Whether ``primitive`` (a lock, an event) is one of gevent's."""
    return type(primitive).__module__.startswith("gevent")


class OSThread:
    """A daemon OS thread where gevent has patched ``threading``, started with the
    interpreter's own ``start_new_thread``; it is not among ``threading.enumerate()``."""

    def __init__(self, target, name, monkey):
        self.name = name
        self.daemon = True
        self.ident = None
        self._target = target
        self._start_new_thread, allocate_lock = monkey.get_original(
            "_thread", ["start_new_thread", "allocate_lock"])
        self._running = allocate_lock()

    def start(self):
        self._running.acquire()
        ready = threading.get_ident  # as the thread's callers will ask (gevent's, if patched)
        with _async_signals_blocked():
            self._start_new_thread(self._bootstrap, (ready,))

    def _bootstrap(self, get_ident):
        self.ident = get_ident()
        try:
            _run_as_ours(self._target)
        except BaseException:
            logging.getLogger("spyglass").exception("spyglass: the %s thread ended", self.name)
        finally:
            self._running.release()

    def is_alive(self):
        return self._running.locked()

    def __repr__(self):
        return f"<OSThread {self.name} ident={self.ident}>"


class _async_signals_blocked:
    """``with``: the asynchronous signals blocked in this thread, then its mask back."""

    def __enter__(self):
        try:
            self._previous = _signal_numbers.pthread_sigmask(signal.SIG_BLOCK,
                                                             _asynchronous_signals())
        except (AttributeError, OSError, ValueError):  # no pthread_sigmask here
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            _signal_numbers.pthread_sigmask(signal.SIG_SETMASK, self._previous)
        return False


def _asynchronous_signals():
    """The numbers of the signals our threads block: all but the faults (made once)."""
    global _asynchronous
    if _asynchronous is None:
        synchronous = {getattr(signal, name) for name in _SYNCHRONOUS if hasattr(signal, name)}
        _asynchronous = _signal_numbers.valid_signals() - synchronous
    return _asynchronous


def gevent_patched():
    """gevent's ``monkey`` module when it has patched ``threading``, else None."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None:
        return None
    try:
        return monkey if monkey.is_module_patched("threading") else None
    except Exception:
        return None
