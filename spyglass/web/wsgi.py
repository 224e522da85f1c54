"""The WSGI adapter of the request lifecycle: ``app = spyglass.wsgi.middleware(app)``.

Flask and Django are traced without it (``AUTOWRAPT_BOOTSTRAP=flask`` / ``django``); this
is for other WSGI frameworks. Each request gets a SERVER span, continuing the W3C trace
context of the incoming headers, named by its method alone (``GET``, no ``http.route``: no
route template is known at this level) unless the app tells its route:
``middleware(app, route=hook)``, where ``hook(environ)`` returns the route template
(``"/users/{id}"``) or None when the request is done, or ``environ["spyglass.view_name"]``
set by the app during the request (it wins over the hook).

What the app and the server see is unchanged: the same environ, the same
``start_response`` result (the server's ``write``), the same response iterable contents
and ``close()``, the same exceptions. The span ends when the server closes the response
(or has read all of it), so streamed bodies are timed to their end. A
``wsgi.file_wrapper`` response is returned as it is, so the server's sendfile still
applies; its span ends when the app returns it.
"""
import functools
import logging
import time

from . import (CARRIED_KEY_SET as _CARRIED_KEY_SET, CARRIED_KEYS, METHODS as _METHODS,
               NO_OPTIONS, RequestTrace, error_block, hooked_route, host_only)
from .. import process
from ..errors.scope import current as current_scope
from ..trace.context import suppressed
from ..trace.span import SERVER

_is_suppressed = suppressed.get
_time_ns = time.time_ns
# RequestTrace's own, as globals: CPython 3.11 specializes reading a global, not a class's
# attribute, and these run on every request.
_init_request, _finish_request = RequestTrace.__init__, RequestTrace.finish


def middleware(app, route=None):
    """Wrap a WSGI app so that every request is traced (a no-op without a running agent).
    ``route``: ``route(environ)`` -> the request's route template or None, asked when the
    request is done (after the app routed it); the span is then ``METHOD route`` with
    ``http.route``."""

    @functools.wraps(app)
    def traced_app(environ, start_response):
        return call(app, environ, start_response, route)

    return traced_app


def traced_method(original):
    """The traced twin of a WSGI app's method that serves requests (Flask's ``wsgi_app``,
    Pyramid's ``Router.__call__``): ``original``'s replacement on its class."""

    traced = call  # a closure's cell: cheaper than the global, once per request

    def app_method(self, environ, start_response):
        return traced(original.__get__(self), environ, start_response)

    return app_method


class WSGIRequest(RequestTrace):
    def __init__(self, agent, tracer, span, method, environ, start_response):
        _init_request(self, agent, tracer, span, method)
        self.environ = environ
        self._start_response = start_response
        self.status = None
        self.route_hook = None  # the middleware's ``route=``: environ -> route template

    def start_response(self, status, headers, exc_info=None):
        self.status = status
        return self._start_response(status, headers, exc_info) if exc_info is not None \
            else self._start_response(status, headers)

    def fail(self, exc):
        if self.route_hook is not None:
            self._name_by_hook()  # before the error event, which tells the route
        RequestTrace.fail(self, exc)

    def finish(self):
        if self.finished:  # the server closing what it has read to the end
            return
        status = self.status
        if status is not None and not self.status_code:
            try:
                self.status_code = int(status[:3])
            except (TypeError, ValueError):
                pass
        if self.route_hook is not None:
            self._name_by_hook()
        _finish_request(self)

    def _name_by_hook(self):
        hook, self.route_hook = self.route_hook, None  # asked once
        if self.route is None:
            self.route = hooked_route(hook, self.environ)

    def current_options(self):
        # carried_options(self.environ, self.options), written out: it runs once or more
        # per request (tests/test_written_out_copies.py holds the two equal).
        environ = self.environ
        if environ.keys().isdisjoint(_CARRIED_KEY_SET):  # looks up the few keys, in C
            return self.options or NO_OPTIONS
        found = {name: environ[key] for name, key in CARRIED_KEYS.items() if key in environ}
        if self.options:
            found.update(self.options)
        return found

    def _remote_user(self):
        return self.environ.get("REMOTE_USER")

    def describe(self, scrubber):
        return describe_environ(self.environ, self, scrubber)


def start(agent, environ, start_response, kind=WSGIRequest):
    """A ``kind`` (a WSGIRequest) for this request, its span started; None when not to be
    traced."""
    config = agent.config
    get = environ.get
    path = get("PATH_INFO") or "/"
    script = get("SCRIPT_NAME")
    if script:
        path = script + path
    prefixes = config.ignore_paths
    if prefixes and path.startswith(prefixes):
        return None
    method = get("REQUEST_METHOD") or "GET"
    known = method if method in _METHODS else "_OTHER"
    tracer = agent.tracer
    if "HTTP_TRACEPARENT" in environ:
        span = tracer.start_server_span(known, environ)
    else:  # start_server_span's own way for a new trace, without its call
        span = tracer._new_local_root(known, None, _time_ns(), SERVER)
    attributes = span.attributes
    attributes["http.request.method"] = known
    if known is not method:
        attributes["http.request.method_original"] = method
    attributes["url.path"] = path
    attributes["url.scheme"] = get("wsgi.url_scheme", "http")
    host = get("HTTP_HOST") or get("SERVER_NAME")
    if host:
        attributes["server.address"] = host_only(host) if ":" in host else host
    agent_header = get("HTTP_USER_AGENT")
    if agent_header:
        attributes["user_agent.original"] = agent_header
    if config.send_default_pii:
        client = environ.get("REMOTE_ADDR")
        if client:
            attributes["client.address"] = client
    request = kind(agent, tracer, span, method, environ, start_response)
    request.path = path
    return request


def call(app, environ, start_response, route_hook=None):
    """Call the WSGI ``app`` for one request, traced (named by ``route_hook(environ)``
    when given)."""
    agent = process.agent  # agent.get(), without its call
    if agent is None or _is_suppressed():
        return app(environ, start_response)
    outer = current_scope().request
    if outer is not None and getattr(outer, "environ", None) is environ:
        return app(environ, start_response)  # already traced by an outer layer
    try:
        request = start(agent, environ, start_response)
    except Exception:
        _log_once("could not start tracing a WSGI request")
        request = None
    if request is None:
        return app(environ, start_response)
    if route_hook is not None:
        request.route_hook = route_hook
    with request:
        result = app(environ, request.start_response)
    result_type = type(result)
    if result_type is list or result_type is tuple:
        request.finish()
        return result
    file_wrapper = environ.get("wsgi.file_wrapper")
    if isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
        request.finish()
        return result
    response = ClosingResponse()
    response._result, response._request = result, request
    return response


class ClosingResponse:
    """The app's response iterable, unchanged in content; ends the request's span when
    the server has read it all or closes it, and reports an error raised while
    iterating.

    An iterator class, not a generator: a server that stops reading once it has the
    Content-Length (werkzeug's does) and then closes would leave a generator suspended,
    and its collection would throw GeneratorExit into it, a costly exception per request.
    A response dropped unread and unclosed (a test client's, say; a server always closes)
    ends its span when it is collected, as the generator did.
    """

    __slots__ = ("_result", "_request", "_iterator")
    # Made by call(), its slots set there: a class with object's own __init__ is made in C
    # (as trace.span's spans are), once per request.
    __init__ = object.__init__

    def __iter__(self):
        self._iterator = iter(self._result)
        return self

    def __next__(self):
        try:
            return next(self._iterator)
        except StopIteration:
            self._request.finish()
            raise
        except BaseException as exc:
            self._request.fail(exc)
            raise

    def close(self):
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._request.finish()

    def __del__(self):
        request = self._request
        if not request.finished:
            request.finish()  # guarded inside: nothing of ours escapes


def describe_environ(environ, request, scrubber):
    """The ``request`` block of an error event, from a WSGI environ: scrubbed."""
    headers = [(key[5:].replace("_", "-").title(), value) for key, value in environ.items()
               if key.startswith("HTTP_") and isinstance(value, str)]
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers.append((key.replace("_", "-").title(), environ[key]))
    query = environ.get("QUERY_STRING") or ""
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or ""
    url = f"{environ.get('wsgi.url_scheme', 'http')}://{host}{request.path}"
    block = error_block(request, scrubber, url, query, headers, environ.get("REMOTE_ADDR"))
    data = _already_parsed_body(request)
    if data is not None:
        block["data"] = scrubber.mapping(data)
    return block


def _already_parsed_body(request):
    if request.data is None:
        return None
    try:
        return request.data()
    except Exception:
        return None


_logged = set()


def _log_once(what):
    if what not in _logged:
        _logged.add(what)
        logging.getLogger("spyglass").exception("spyglass: %s", what)
