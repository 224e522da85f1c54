"""Django: a SERVER span per request, named by the URL pattern; unhandled exceptions
reported. Sync and async (ASGI) handlers alike, with no change to the settings.

- ``BaseHandler.load_middleware`` wraps the finished middleware chain it builds:
  spyglass runs first, before every middleware;
- ``response_for_exception`` reports an exception Django turns into a 500, before Django
  logs it.

Both are patched when their modules are first imported, not at ``import django``. The
user is read from ``request.user`` only when the app has already evaluated it (reading
never queries the session or the database). A streaming response's span ends when the
server closes it.
"""
import functools

from ._patch import Patch, Supports
from .. import process
from ..errors import capture
from ..errors.scope import current as current_scope, current_request
from ..trace.context import suppressed
from ..web import user_from, wsgi
from ..web.wsgi import WSGIRequest

SUPPORTS = Supports("django", "3.2")
TIMING = None
PATCHES = (
    Patch("django.core.handlers.base", "BaseHandler", load_middleware="tracing_chain"),
    Patch("django.core.handlers.exception", response_for_exception="reporting_exception"),
)


def tracing_chain(original, agent):
    def load_middleware(self, is_async=False):
        original(self, is_async)
        chain = self._middleware_chain
        if chain is not None:
            self._middleware_chain = (_traced_async_chain(chain) if is_async
                                      else _traced_chain(chain))

    return load_middleware


def reporting_exception(original, agent):
    from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
    from django.http import Http404
    from django.http.multipartparser import MultiPartParserError

    client_errors = (Http404, PermissionDenied, MultiPartParserError, BadRequest,
                     SuspiciousOperation)

    def response_for_exception(request, exc):
        if not isinstance(exc, client_errors):
            trace = current_request()
            if trace is not None:
                _annotate(trace, request, None)
                capture.capture_unhandled(exc, trace)
        return original(request, exc)

    return response_for_exception


# -- the chain wrappers ---------------------------------------------------------------------
# Sync and async: the one difference is the await (an async chain's wrapper must be a
# coroutine function itself).

def _traced_chain(chain):
    @functools.wraps(chain)
    def traced_chain(request):
        trace = _begin(request)
        if trace is None:
            return chain(request)
        with trace:
            response = chain(request)
        trace.respond(response)
        return response

    return traced_chain


def _traced_async_chain(chain):
    @functools.wraps(chain)
    async def traced_chain(request):
        trace = _begin(request)
        if trace is None:
            return await chain(request)
        with trace:
            response = await chain(request)
        trace.respond(response)
        return response

    return traced_chain


class DjangoRequest(WSGIRequest):
    """A request traced from inside Django's handler (served by WSGI or ASGI): its
    ``request.META`` is the environ; ``django_request`` tells the route, user and body."""

    django_request = None

    def fail(self, exc):
        _annotate(self, self.django_request, None)
        WSGIRequest.fail(self, exc)

    def respond(self, response):
        django_request = self.django_request
        _annotate(self, django_request, response)
        closers = getattr(response, "_resource_closers", None)
        if getattr(response, "streaming", False) and isinstance(closers, list):
            closers.append(self.finish)  # the span ends when the server closes the response
        else:
            self.finish()


class OuterLayer:
    """A request a spyglass WSGI/ASGI middleware outside Django traces: Django only tells
    it what it knows."""

    def __init__(self, trace, django_request):
        self.trace = trace
        self.django_request = django_request

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        return False

    def respond(self, response):
        _annotate(self.trace, self.django_request, response)


def _begin(request):
    """The trace to run Django's chain in: the request's own (started), the outer layer's,
    or None (not traced: no agent, spyglass's own thread, an ignored path, an error)."""
    agent = process.agent  # agent.get(), without its call
    if agent is None or suppressed.get():
        return None
    outer = current_scope().request
    if outer is not None:
        return OuterLayer(outer, request)
    try:
        trace = wsgi.start(agent, request.META, None, DjangoRequest)
        if trace is not None:
            trace.django_request = request
            if "wsgi.url_scheme" not in request.META:
                trace.span.attributes["url.scheme"] = request.scheme  # ASGI: from the scope
        return trace
    except Exception:
        return None


def _annotate(trace, request, response):
    """Route, status, user and parsed body: what only Django's request knows."""
    try:
        if response is not None:
            trace.status_code = response.status_code
        match = getattr(request, "resolver_match", None)
        route = getattr(match, "route", None)
        if route:
            trace.route = route if route.startswith(("/", "^")) else "/" + route
        user = _evaluated_user(request)
        trace.framework_user = None if user is None else user_from(
            user, trace.agent.config.send_default_pii)
        trace.data = functools.partial(_parsed_body, request)
    except Exception:
        pass


def _evaluated_user(request):
    """The user object the app (its middleware) already loaded, or None."""
    user = request.__dict__.get("user")
    if user is None:
        return None
    wrapped = getattr(user, "_wrapped", user)  # SimpleLazyObject: evaluated or not yet
    return None if wrapped is _lazy_empty() else wrapped


_empty = None


def _lazy_empty():
    """Django's marker of a lazy object not evaluated yet (imported once, not per request)."""
    global _empty
    if _empty is None:
        from django.utils.functional import empty

        _empty = empty
    return _empty


def _parsed_body(request):
    post = request.__dict__.get("_post")
    if not post:
        return None
    return {key: values if len(values) > 1 else values[0] for key, values in post.lists()}
