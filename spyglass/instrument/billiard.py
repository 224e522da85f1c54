"""billiard's pool (Celery's, and any ``billiard.Pool``): a worker ends in ``os._exit``
inside its own ``run()`` (``Worker._do_exit``), before the ``multiprocessing.util``
finalizers that drain the workers of the standard library's pools (see
``instrument/multiprocessing.py``) could run. ``Worker._do_exit`` is patched to run the
reporter's at-exit drain first, bounded by ``shutdown_timeout``.
"""
import logging

from ._patch import Patch, Supports

SUPPORTS = Supports("billiard", "3.6")
TIMING = None
PATCHES = (
    Patch("billiard.pool", "Worker", _do_exit="draining_first"),
)

log = logging.getLogger("spyglass")


def draining_first(original, agent):
    def _do_exit(self, *args, **kwargs):
        try:
            agent.reporter.at_exit()
        except Exception:
            log.exception("spyglass: could not drain the billiard worker")
        return original(self, *args, **kwargs)

    return _do_exit
