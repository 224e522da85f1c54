"""Signals, so that the app meets them as it would without spyglass.

- Our threads block the asynchronous signals (see threads.py).
- SIGTERM, where the app left it at its default (which kills without atexit): drain the
  queue within ``shutdown_timeout``, then die of SIGTERM as before. A second SIGTERM ends
  the process at once; one that comes during the at-exit drain lets it finish first.
- Python runs a handler only when the main thread is back in the interpreter. A signal
  that lands just before the main thread blocks in C (between its last look at the flag
  and the system call) leaves the handler pending for ever, and a process meant to die
  lives on. A watch thread learns of every signal from Python's wakeup fd and, if our
  handler has not started shortly after a SIGTERM, sends it again to the main thread,
  which interrupts the wait. Only where the app has no wakeup fd of its own.
"""
import functools
import logging
import os
import signal
import threading

from . import threads

log = logging.getLogger("spyglass")

# How long the watch gives the handler to start after a SIGTERM before sending it again.
HANDLER_GRACE = 0.1
KICKS = 50


def drain_on_sigterm(reporter):
    """Install the SIGTERM handler (and its watch) if the app left SIGTERM at its default.

    Not under uWSGI: it installs C-level handlers that Python's signal module cannot see.
    """
    import sys

    if "uwsgi" in sys.modules or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        handler = _SigtermHandler(reporter)
        signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError, AttributeError):
        return
    handler.watch()
    os.register_at_fork(after_in_child=handler.after_fork_in_child)


class _SigtermHandler:
    def __init__(self, reporter):
        self.reporter = reporter
        self.started = False
        self._watch_fd = None

    def __call__(self, signum, frame):
        self.started = True
        # The default action first: a second SIGTERM ends the process at once.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if self.reporter.draining_at_exit():
            # The drain under way (at exit, or a pool worker's end) goes on, within
            # shutdown_timeout; the process dies of SIGTERM once it is done.
            self.reporter.after_exit_drain(_die_of_sigterm)
            return
        try:
            self.reporter.at_exit()
        finally:
            _die_of_sigterm()

    # -- the watch ------------------------------------------------------------------------

    def watch(self):
        """Read Python's wakeup fd in a thread of our own, unless the app has one."""
        try:
            read_fd, write_fd = os.pipe()
            os.set_blocking(write_fd, False)
            previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        except (AttributeError, OSError, ValueError):
            return
        if previous != -1:  # the app's own: give it back, and go without the watch
            signal.set_wakeup_fd(previous)
            os.close(read_fd)
            os.close(write_fd)
            return
        self._watch_fd = write_fd
        threads.new(functools.partial(self._watch, read_fd, write_fd),
                    "spyglass-sigterm-watch").start()

    def _watch(self, read_fd, write_fd):
        try:
            while not self.started:
                received = os.read(read_fd, 512)
                if not received:
                    return
                if signal.SIGTERM in received:
                    self._kick_until_started()
        except OSError:
            return
        finally:
            os.close(read_fd)

    def _kick_until_started(self):
        main = threading.main_thread().ident
        for _ in range(KICKS):
            threads.sleep(HANDLER_GRACE)
            if self.started or signal.getsignal(signal.SIGTERM) is not self:
                return  # ours ran; or the app's own handler took SIGTERM over: its business
            log.debug("spyglass: the SIGTERM handler is pending; interrupting the main thread")
            signal.pthread_kill(main, signal.SIGTERM)  # interrupts the main thread's wait

    def after_fork_in_child(self):
        """The wakeup fd is shared with the parent: no signal of the child's may reach its
        watch (a Celery prefork child's SIGTERM would stop the whole worker). The child
        lets go of it; a fresh pipe and watch of its own if the handler is still ours."""
        if self._watch_fd is None:
            return
        try:
            previous = signal.set_wakeup_fd(-1)
            if previous != self._watch_fd:
                signal.set_wakeup_fd(previous)  # the app's own since: left as it was
                return
        except ValueError:
            return
        self._watch_fd = None
        if signal.getsignal(signal.SIGTERM) is self:
            self.watch()


def _die_of_sigterm():
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
