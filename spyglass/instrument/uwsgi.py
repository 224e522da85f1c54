"""uWSGI: every worker reports on its own, from its first second to its last request.

uWSGI forks its workers in C, so Python's at-fork hooks do not run there, and it creates
its ``uwsgi`` module without the import system, so no import hook sees it. Hence:

- At start the agent notices it runs inside uWSGI (``agent._inside_uwsgi``) and holds its
  reporter: no spyglass thread ever runs in the master, which forks at any moment (start,
  respawn, ``max-requests``, reload); a thread holding a lock at that moment would deadlock
  the child. It then ``watch``es imports until the ``uwsgi`` module exists and calls
  ``install``.

What it patches, on the ``uwsgi`` module, always calling what was there before:
``uwsgi.post_fork_hook``, in each new worker, mule and spooler: new trace ids, empty queue
and metrics, the reporter thread started (idle workers report too); ``uwsgi.atexit``:
drain the queue at a worker's exit (graceful stop, reload, ``max-requests``), even when
``skip-atexit-teardown`` skips Python's own atexit. ``uwsgidecorators``, when imported,
sets its own ``post_fork_hook``: ours is chained before it again.

With ``lazy-apps`` the app, and so ``install``, runs in the worker after the fork: the
worker is resumed at once. Without threads (old uWSGI without ``enable-threads``) no
thread of ours would ever run: one warning says what to add.
"""
import logging
import sys

from ._patch import Patch

SUPPORTS = None  # uWSGI's module carries no distribution; any uWSGI 2
TIMING = None
PATCHES = (
    Patch("uwsgi", inherited=True, post_fork_hook="resuming_worker", atexit="draining_at_exit"),
    # uwsgidecorators replaces uwsgi.post_fork_hook with its own chain when imported
    Patch("uwsgidecorators", "uwsgi", inherited=True, post_fork_hook="resuming_worker"),
)

log = logging.getLogger("spyglass")

THREADS_WARNING = ("spyglass: uWSGI runs without Python threads, so spyglass cannot send "
                   "anything in the background. Add `enable-threads = true` to the [uwsgi] "
                   "section of your ini file (or --enable-threads on the command line).")


def watch(agent):
    """Call ``install`` as soon as the ``uwsgi`` module exists: at the first import after
    uWSGI created it (the app's, in the master or, with lazy-apps, in each worker)."""
    if "uwsgi" in sys.modules:
        install(agent, sys.modules["uwsgi"])
        return
    sys.meta_path.insert(0, _UwsgiWatcher(agent))


class _UwsgiWatcher:
    """A meta path finder that finds nothing: it only looks, once per new import, whether
    uWSGI's module has appeared, and then removes itself."""

    def __init__(self, agent):
        self.agent = agent

    def find_spec(self, name, path=None, target=None):
        uwsgi = sys.modules.get("uwsgi")
        if uwsgi is not None:
            try:
                sys.meta_path.remove(self)
            except ValueError:
                return None
            install(self.agent, uwsgi)
        return None


def install(agent, uwsgi):
    """Through the registry (its one guard): patch ``uwsgi``, then warn about threads or
    resume a worker that loads the app after the fork."""
    from . import install as install_instrumentation

    if not install_instrumentation(agent, uwsgi, "uwsgi"):
        log.warning("spyglass: workers report from their first traced request on")
        return
    try:
        if not threads_enabled(uwsgi):
            if _first_process(uwsgi):
                log.warning(THREADS_WARNING)
        elif uwsgi.worker_id() > 0 and _option(uwsgi, "lazy-apps", "lazy"):
            agent.resume_in_child()  # the fork is behind us: post_fork_hook has run already
    except Exception:
        log.exception("spyglass: could not hook into uWSGI; workers report from their "
                      "first traced request on")


def resuming_worker(previous, agent):
    return _chained("post_fork_hook", agent.resume_in_child, previous)


def draining_at_exit(previous, agent):
    return _chained("atexit", agent.reporter.at_exit, previous)


def threads_enabled(uwsgi) -> bool:
    return bool(getattr(uwsgi, "has_threads", True)) or _option(uwsgi, "enable-threads")


def _first_process(uwsgi) -> bool:
    """The master, or worker 1 when each worker loads the app: one warning, not one per
    worker."""
    try:
        return uwsgi.worker_id() <= 1
    except Exception:
        return True


def _option(uwsgi, *names) -> bool:
    """A boolean uWSGI option: True from the command line, b"true"/b"1"… from an ini."""
    options = getattr(uwsgi, "opt", {}) or {}
    for name in names:
        value = options.get(name)
        if isinstance(value, list):  # an option given more than once
            value = value[-1]
        if isinstance(value, (bytes, bytearray)):
            value = value.decode("latin-1")
        if value is True or isinstance(value, str) and value.strip().lower() not in (
                "", "0", "false", "no", "off", "n"):
            return True
    return False


def _chained(attribute, ours, previous):
    """What ``uwsgi.<attribute>`` becomes: ``ours``, then whatever the app had set (both
    always run; an error in ours never stops the app's)."""
    def chained():
        try:
            ours()
        except Exception:
            log.exception("spyglass: error in uwsgi.%s", attribute)
        if previous is not None:
            previous()

    return chained
