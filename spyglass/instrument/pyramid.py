"""Pyramid: a SERVER span per request, named by the matched route's pattern; exceptions
reported. No change to the app's code or settings.

- ``Router.__call__``, the WSGI app, is the request's span (``spyglass.web.wsgi``): a
  streamed body is timed to its end;
- ``add_default_tweens``, which every new Configurator's registry setup calls, also adds
  spyglass's tween (``spyglass.instrument.pyramid.tween_factory``), over Pyramid's
  exception-view tween: it reads the route pattern (``/users/{id}``) once the request has
  been routed, and reports an exception that an exception view turned into a 5xx response.
  An exception no view handles goes on to the WSGI layer, which reports it. An app that
  lists its tweens explicitly (the ``pyramid.tweens`` setting) decides where this one goes,
  if anywhere: its dotted name is the one above.
"""
from ._patch import Patch, Supports
from ..errors import capture
from ..errors.scope import current_request
from ..web import wsgi

SUPPORTS = Supports("pyramid", "1.10")
TIMING = None
PATCHES = (
    Patch("pyramid.router", "Router", __call__="traced_call"),
    Patch("pyramid.config.tweens", "TweensConfiguratorMixin",
          add_default_tweens="adding_tween"),
)

TWEEN = f"{__name__}.tween_factory"


def traced_call(original, agent):
    return wsgi.traced_method(original)


def adding_tween(original, agent):
    from pyramid.tweens import EXCVIEW

    def add_default_tweens(self):
        original(self)
        self.add_tween(TWEEN, over=EXCVIEW)

    return add_default_tweens


def tween_factory(handler, registry):
    """spyglass's tween: what only Pyramid's request knows, for the request's span."""

    def spyglass_tween(request):
        trace = current_request()
        if trace is None:
            return handler(request)
        try:
            response = handler(request)
        except BaseException:
            _read_route(trace, request)  # the WSGI layer reports it, named
            raise
        _read_route(trace, request)
        _report_handled_error(trace, request, response)
        return response

    return spyglass_tween


def _read_route(trace, request):
    try:
        route = getattr(request, "matched_route", None)
        if route is not None:
            trace.route = route.pattern if route.pattern.startswith("/") else "/" + route.pattern
    except Exception:
        pass  # named by its method alone


def _report_handled_error(trace, request, response):
    """An exception an exception view answered with a 5xx: the app's error page, reported
    (a 4xx one is the app's own answer, as are Pyramid's HTTP exceptions)."""
    try:
        exception = request.__dict__.get("exception")
        if exception is None or getattr(response, "status_int", 0) < 500:
            return
        from pyramid.httpexceptions import HTTPException

        if not isinstance(exception, HTTPException):
            capture.capture_unhandled(exception, trace)
    except Exception:
        pass
