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
from .. import agent as agent_module
from .. import wsgi
from ..errors import capture
from ..scopes import current as current_scope, current_request, pop_scope, push_request_scope
from ..trace.context import activate, suppressed
from ..web import user_from

SUPPORTS = Supports("django", "3.2")
TIMING = None
PATCHES = (
    Patch("django.core.handlers.base", "BaseHandler.load_middleware", "tracing_chain"),
    Patch("django.core.handlers.exception", "response_for_exception", "reporting_exception"),
)

_get_agent = agent_module.get


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

def _traced_chain(chain):
    @functools.wraps(chain)
    def traced_chain(request):
        agent = _get_agent()
        if agent is None or suppressed.get():
            return chain(request)
        parent = current_scope()
        outer = parent.request
        if outer is not None:  # a spyglass WSGI/ASGI middleware outside Django traces it
            response = chain(request)
            _annotate(outer, request, response)
            return response
        trace = _start(agent, request)
        if trace is None:
            return chain(request)
        token = push_request_scope(trace, parent)
        active = activate(trace.tracer._scope_manager, trace.span, False)
        try:
            response = chain(request)
        except BaseException as exc:
            _annotate(trace, request, None)
            trace.fail(exc)
            raise
        finally:
            active.close()
            pop_scope(token, parent)
        _finish(trace, request, response)
        return response

    return traced_chain


def _traced_async_chain(chain):
    @functools.wraps(chain)
    async def traced_chain(request):
        agent = _get_agent()
        if agent is None or suppressed.get():
            return await chain(request)
        parent = current_scope()
        outer = parent.request
        if outer is not None:
            response = await chain(request)
            _annotate(outer, request, response)
            return response
        trace = _start(agent, request)
        if trace is None:
            return await chain(request)
        token = push_request_scope(trace, parent)
        active = activate(trace.tracer._scope_manager, trace.span, False)
        try:
            response = await chain(request)
        except BaseException as exc:
            _annotate(trace, request, None)
            trace.fail(exc)
            raise
        finally:
            active.close()
            pop_scope(token, parent)
        _finish(trace, request, response)
        return response

    return traced_chain


def _start(agent, request):
    try:
        trace = wsgi.start(agent, request.META, None)
        if trace is not None and "wsgi.url_scheme" not in request.META:
            trace.span.attributes["url.scheme"] = request.scheme  # ASGI: from the scope
        return trace
    except Exception:
        return None


def _finish(trace, request, response):
    _annotate(trace, request, response)
    closers = getattr(response, "_resource_closers", None)
    if getattr(response, "streaming", False) and isinstance(closers, list):
        closers.append(trace.finish)  # the span ends when the server closes the response
    else:
        trace.finish()


def _annotate(trace, request, response):
    """Route, status, user and parsed body: what only Django's request knows."""
    try:
        if response is not None:
            trace.status_code = response.status_code
        match = getattr(request, "resolver_match", None)
        route = getattr(match, "route", None)
        if route:
            trace.route = route if route.startswith(("/", "^")) else "/" + route
        trace.framework_user = _evaluated_user(request, trace.agent.config.send_default_pii)
        trace.data = functools.partial(_parsed_body, request)
    except Exception:
        pass


def _evaluated_user(request, send_pii):
    user = request.__dict__.get("user")
    if user is None:
        return None
    wrapped = getattr(user, "_wrapped", user)  # SimpleLazyObject: evaluated or not yet
    if wrapped is None or wrapped is _lazy_empty():
        return None
    return user_from(wrapped, send_pii)


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
