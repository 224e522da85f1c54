"""The request lifecycle, once, whatever serves the request: WSGI (``web.wsgi``), ASGI
(``web.asgi``), and Flask, Django and Starlette through them.

A ``RequestTrace`` owns the request's SERVER span and what is learnt about the request
while it runs (route template, status, user, per-request options, exceptions already
reported, log records held back). Each adapter makes one (its span started) and runs the
app inside it::

    with request:                  # its scope layer pushed, its span active
        result = app(...)          # an exception: fail(exc), reported, then re-raised
    ...                            # finish(), when the response is done

``finish()`` names and marks the span, decides slow and error, releases or drops held log
records, and records the request metric.

A request no route matched (a 404, a 405 where the router matches methods) keeps the name
its span started with, the method alone (``GET``), and gets no ``http.route``, as
OpenTelemetry does; the collector shows it as ``GET (no route)``.

Per-request options (AppEnlight's environ keys, ``spyglass.*`` in the WSGI environ or the
ASGI scope, and ``spyglass.set_request_options``):

==================  ==================================================================
username            the user's id for this request
report_local_vars   send frames' local variables with this request's errors
ignore_slow         never report this request as slow
ignore_error        do not report this request's error
view_name           name the request by this instead of its route template
group_string        group this request's errors by this string (the fingerprint)
message             a message attached to this request's error events
force_logs          send this request's log records even under ``logging_on_error``
force_send          export this request's span even if head sampling dropped its trace
==================  ==================================================================
"""
import logging
import time
import types

from ..config import truthy
from ..errors import capture, scope as scopes
from ..trace import context

log = logging.getLogger("spyglass")

OPTIONS = ("username", "report_local_vars", "ignore_slow", "ignore_error", "view_name",
           "group_string", "message", "force_logs", "force_send")
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE",
                     "PATCH", "QUERY"))
MAX_HELD_LOGS = 200
NO_OPTIONS = types.MappingProxyType({})
# The keys an app may set in the WSGI environ or the ASGI scope: ``spyglass.view_name`` …
CARRIED_KEYS = {name: "spyglass." + name for name in OPTIONS}
CARRIED_KEY_SET = frozenset(CARRIED_KEYS.values())

_time_ns = time.time_ns
_current_scope, _set_scope, _reset_scope = scopes.current, scopes.set_current, scopes.reset_current
_get_active_scope, _activate_scope = context.get_active_scope, context.activate_scope
_reset_active_scope = context.reset_active_scope
_new_object, _EventScope = object.__new__, scopes.EventScope


class RequestTrace:
    # No __slots__ (subclasses add their own). What every request reads is set on the
    # instance by __init__: on CPython 3.11 a read that finds only a class-level default is
    # not specialized, and costs several times an instance attribute's. The error path's
    # are class-level defaults.
    captured = None         # exceptions already reported in this request
    data = None             # callable -> the body the app already parsed (form/JSON)
    path = ""
    http = True             # an HTTP request: its end goes into the request metrics

    def __init__(self, agent, tracer, span, method):
        self.agent = agent
        self.tracer = tracer  # the tracer that made ``span``
        self.span = span
        self.method = method
        self.route = None           # the route template, once the framework has matched one
        self.status_code = 0
        self.errored = False
        self.options = None         # set through spyglass.set_request_options
        self.held_logs = None       # OTLP log records held back under logging_on_error
        self.framework_user = None  # {"id": ..., ...} found by a framework integration
        self.finished = False

    # -- the app runs inside: ``with request:`` ----------------------------------------------

    # Once per request, so what errors.scope.push_request_scope and trace.context.activate do
    # on the way in, and trace.context.Scope.close and errors.scope.pop_scope on the way out,
    # is written out here (a call costs about what each does); tests/test_web_lifecycle.py
    # holds the copies equal.

    def __enter__(self):
        parent = _current_scope()
        self._parent_scope = parent
        layer = _new_object(_EventScope)  # EventScope(parent, self), its __init__ written out
        layer.parent = parent
        layer.request = self
        self._scope_token = _set_scope(layer)
        active = self._active = context.Scope()
        active._manager = self.tracer._scope_manager
        active.span = self.span
        active._finish_on_close = False
        active._token = _activate_scope(active)
        return self

    def __exit__(self, exc_type, exc, traceback):
        try:
            if exc is not None:
                self.fail(exc)  # inside the request's scope: the event gets its user, tags
        finally:
            active = self._active
            if _get_active_scope() is active:
                try:
                    _reset_active_scope(active._token)
                except (ValueError, RuntimeError):
                    active._set_back()
            try:
                _reset_scope(self._scope_token)
            except ValueError:
                _set_scope(self._parent_scope)
        return False

    # -- what the request says about itself (overridden per server interface) ----------

    def _remote_user(self):
        return None

    def describe(self, scrubber):
        """The ``request`` block of an error event (built on the error path only)."""
        return {"method": self.method, "route": self.route_name()}

    # -- options, user, route ------------------------------------------------------------

    def current_options(self):
        """The request's options as they stand now (read-only): those set through
        ``set_request_options``, over those the request carries itself (the WSGI environ's
        ``spyglass.*`` keys, which the app may set while it runs)."""
        return self.options or NO_OPTIONS

    def option(self, name):
        return self.current_options().get(name)

    def set_options(self, options):
        check_options(options)
        if self.options is None:
            self.options = {}
        self.options.update(options)

    def route_name(self):
        return self.current_options().get("view_name") or self.route

    def user_info(self, options=None):
        username = (self.current_options() if options is None else options).get("username")
        if username:
            return {"id": str(username), "username": str(username)}
        if self.framework_user:
            return self.framework_user
        remote = self._remote_user()
        return {"id": str(remote), "username": str(remote)} if remote else None

    # -- exceptions and logs met during the request ----------------------------------------

    def already_captured(self, exc):
        captured = self.captured
        return captured is not None and any(known is exc for known in captured)

    def captured_exception(self, exc):
        if self.captured is None:
            self.captured = []
        self.captured.append(exc)

    def hold_log(self, record):
        """Under ``logging_on_error``: keep ``record`` until the request's outcome is
        known; False when it is to be sent now."""
        if self.finished or truthy(self.option("force_logs")):
            return False
        held = self.held_logs
        if held is None:
            held = self.held_logs = []
        if len(held) < MAX_HELD_LOGS:
            held.append(record)
        return True

    # -- the end ---------------------------------------------------------------------------

    def fail(self, exc):
        """The app raised ``exc`` (it goes on to the server after this)."""
        if isinstance(exc, Exception):
            capture.capture_unhandled(exc, self)
            capture.note_propagated(exc)
            if not self.status_code:
                self.status_code = 500
        self.finish()

    def finish(self):
        if self.finished:
            return
        self.finished = True
        span = self.span
        route = None
        try:
            # Options read once: the common request has none, and finishing is per request.
            options = self.current_options()
            route = (options and options.get("view_name")) or self.route
            duration_s = self._complete(span, route, options)
        except Exception:
            log.exception("spyglass: error while finishing a request's span")
            duration_s = None
        try:  # this runs in the app's own except blocks too: nothing of ours may escape
            span.finish()
            if duration_s is not None and self.http and _record_request is not None:
                _record_request(route or "", self.method, self.status_code, duration_s)
        except Exception:
            log.exception("spyglass: error while exporting a request's span")

    def _complete(self, span, route, options):
        config = self.agent.config
        attributes = span.attributes
        status = self.status_code
        if route:
            method = self.method  # a known one, else _OTHER: OpenTelemetry's rule (few names)
            span.name = f"{method if method in METHODS else '_OTHER'} {route}"
            attributes["http.route"] = route
        if status:
            attributes["http.response.status_code"] = status
        if options or self.framework_user:
            user = self.user_info(options)
            user_id = user and user.get("id")
        else:  # user_info's last case, the common one, without its call
            user_id = self._remote_user()
        if user_id:
            attributes["enduser.id"] = str(user_id)
        if not self.errored and status >= 500 and not truthy(options.get("ignore_error")):
            span.mark_error("")
            self.errored = True
        elif status == 404 and config.report_404 and not truthy(options.get("ignore_error")):
            span.mark_error("Not Found")
            self.errored = True
            capture.capture_request_message(self, "404 Not Found", "error",
                                            fingerprint=["404", route or self.path])
        duration_s = (_time_ns() - span.start_ns) / 1e9
        slow = duration_s >= config.slow_request_time and self._may_be_slow(config, options)
        if slow:
            attributes["spyglass.slow"] = True
            span.keep = True
        if options and truthy(options.get("force_send")):
            span.keep = True
        if self.held_logs:
            if self.errored or slow or truthy(options.get("force_logs")):
                submit = self.agent.reporter.submit_log
                for record in self.held_logs:
                    submit(record)
            self.held_logs = None
        return duration_s

    def _may_be_slow(self, config, options):
        if truthy(options.get("ignore_slow")):
            return False
        prefixes = config.ignore_slow_paths
        return not (prefixes and self.path.startswith(prefixes))


def carried_options(carrier, options):
    """The options of a request whose app may set ``spyglass.*`` keys in ``carrier`` (the
    WSGI environ, the ASGI scope): ``options`` (from ``set_request_options``) over those."""
    if carrier.keys().isdisjoint(CARRIED_KEY_SET):  # looks up the few keys, in C
        return options or NO_OPTIONS
    found = {name: carrier[key] for name, key in CARRIED_KEYS.items() if key in carrier}
    if options:
        found.update(options)
    return found


def hooked_route(hook, carrier):
    """The route template the middleware's naming hook ``route=`` gives for ``carrier``
    (the environ or scope), or None (no route, or the hook failed: logged once)."""
    try:
        route = hook(carrier)
    except Exception:
        _log_once_per(hook, "spyglass: the route hook %r raised; the request is named by "
                            "its method", hook, exc_info=True)
        return None
    if route is None or route == "":
        return None
    if not isinstance(route, str):
        _log_once_per(hook, "spyglass: the route hook %r returned %r, not a str; the request "
                            "is named by its method", hook, type(route).__name__)
        return None
    return route


_hooks_logged = set()


def _log_once_per(hook, message, *args, **kwargs):
    if id(hook) not in _hooks_logged:
        _hooks_logged.add(id(hook))
        log.warning(message, *args, **kwargs)


def check_options(options):
    """TypeError for a name that is not a request option (whether or not the sensor runs,
    so that a typo shows in development too)."""
    unknown = set(options).difference(OPTIONS)
    if unknown:
        raise TypeError(f"unknown request option(s): {', '.join(sorted(unknown))}")


# -- request metrics: spyglass.metrics's recorder (which never raises), when it is there ----

try:
    from ..metrics import record_request as _record_request
except ImportError:  # a build without metrics
    _record_request = None


def error_block(request, scrubber, url, query, headers, client=None):
    """The ``request`` block of an error event: the URL (``url`` without its query), query
    string and headers (pairs) scrubbed; the client's address only under
    ``send_default_pii``."""
    block = {
        "method": request.method,
        "url": scrubber.url(url + ("?" + query if query else "")),
        "route": request.route_name(),
        "query_string": scrubber.query_string(query),
        "headers": scrubber.headers(headers),
    }
    if client and request.agent.config.send_default_pii:
        block["client_address"] = client
    return block


def host_only(host):
    """``host:port`` (or ``[::1]:port``) without the port."""
    if host.startswith("["):  # [::1]:8000
        return host[1:].partition("]")[0]
    return host.partition(":")[0]


def user_from(obj, send_pii):
    """A user dict from a framework's user object (Django's ``request.user``, a
    flask-login user, ``g.user``) or a plain id; None for anonymous users."""
    if obj is None or getattr(obj, "is_anonymous", False) is True:
        return None
    if isinstance(obj, (str, int)):
        return {"id": str(obj)}
    user_id = None
    get_id = getattr(obj, "get_id", None)  # flask-login's UserMixin
    if callable(get_id):
        user_id = get_id()
    if user_id is None:
        user_id = getattr(obj, "pk", None)
        if user_id is None:
            user_id = getattr(obj, "id", None)
    if user_id is None:
        return None
    user = {"id": str(user_id)}
    if send_pii:
        get_username = getattr(obj, "get_username", None)
        username = get_username() if callable(get_username) else getattr(obj, "username", None)
        if username:
            user["username"] = str(username)
        email = getattr(obj, "email", None)
        if email:
            user["email"] = str(email)
    return user
