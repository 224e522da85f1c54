"""pysolr: each Solr operation is a CLIENT span in the ``nosql`` category, with the core,
the query (obfuscated by ``spyglass.redact.solr``: field names and operators kept, every
term a ``?``, as SQL literals are), and for searches the hits and QTime. The HTTP request
pysolr makes underneath (requests) is part of it, not a span of its own.

``search``/``more_like_this`` are spans ``solr.search <core>`` with ``db.query.text``,
``spyglass.solr.hits``, ``spyglass.solr.qtime_ms``; ``add``, ``delete``, ``commit``,
``optimize``, ``extract``, ``suggest_terms`` spans ``solr.<operation> <core>``.
"""
from urllib.parse import urlsplit

from ._calls import NOSQL, OUTSIDE_SCOPE, CallRecorder, metric_recorder, time_ns
from ._http import _in_request
from ._patch import Patch, Supports
from ..redact.solr import obfuscate_query
from ..trace.context import get_active_scope

SUPPORTS = Supports("pysolr", "3.0")
TIMING = "pysolr"
OPERATIONS = ("search", "add", "delete", "commit", "optimize", "extract", "more_like_this",
              "suggest_terms")
PATCHES = (
    Patch("pysolr", "Solr", **dict.fromkeys(OPERATIONS, "traced_operation")),
)
# db.client.operation.duration's operation: the Solr request handler each operation calls
# by default (a fixed set: an app's own handler names stay on the span).
HANDLERS = {"search": "select", "more_like_this": "mlt", "add": "update", "delete": "update",
            "commit": "update", "optimize": "update", "extract": "update/extract",
            "suggest_terms": "terms"}


def setup(agent, module):
    calls = CallRecorder(agent, TIMING, NOSQL)
    calls.metric = metric_recorder("record_db_call")
    return calls


def traced_operation(method, calls):
    operation = method.__name__

    def traced(self, *args, **kwargs):
        scope = get_active_scope() or OUTSIDE_SCOPE
        token = _in_request.set(True)  # requests underneath: part of this span
        start = time_ns()
        try:
            result = method(self, *args, **kwargs)
        except Exception as error:
            _in_request.reset(token)
            _record(calls, operation, scope.span, self, args, kwargs, start, None, error)
            raise
        _in_request.reset(token)
        _record(calls, operation, scope.span, self, args, kwargs, start, result, None)
        return result

    return traced


def _record(calls, operation, parent, solr, args, kwargs, start, result, error):
    end = time_ns()
    try:
        core = _core(solr.url)
        parts = urlsplit(solr.url)
        attributes = {"db.system": "solr", "db.operation.name": operation,
                      "db.namespace": core, "server.address": parts.hostname,
                      "server.port": parts.port or (443 if parts.scheme == "https" else 80)}
        query = args[0] if args and operation in ("search", "more_like_this") else kwargs.get("q")
        if isinstance(query, str):
            attributes["db.query.text"] = obfuscate_query(query)
        hits = getattr(result, "hits", None)
        if isinstance(hits, int):
            attributes["spyglass.solr.hits"] = hits
        qtime = getattr(result, "qtime", None)
        if isinstance(qtime, int):
            attributes["spyglass.solr.qtime_ms"] = qtime
        name = f"solr.{operation} {core}" if core else f"solr.{operation}"
        calls.record(parent, name, start, end, attributes, error, name)
        if calls.metric is not None:
            calls.metric("solr", HANDLERS[operation], (end - start) / 1e9)
    except Exception:
        calls.failed()


def _core(url):
    path = urlsplit(url).path.rstrip("/")
    return path.rsplit("/", 1)[-1] if "/" in path else ""
