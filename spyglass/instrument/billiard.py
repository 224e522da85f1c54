"""billiard's pool (Celery's, and any ``billiard.Pool``): a worker ends in ``os._exit``
inside its own ``run()`` (``Worker._do_exit``), before the ``multiprocessing.util``
finalizers that drain the workers of the standard library's pools (see
``instrument/multiprocessing.py``) could run. ``Worker._do_exit`` is patched to run the
reporter's at-exit drain first, bounded by ``shutdown_timeout``.
"""
from ._patch import Patch, Supports, first

SUPPORTS = Supports("billiard", "3.6")
TIMING = None
PATCHES = (
    Patch("billiard.pool", "Worker", _do_exit="draining_first"),
)


def draining_first(original, agent):
    return first(original, agent.reporter.at_exit, "drain the billiard worker")
