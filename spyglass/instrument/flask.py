"""Flask: a SERVER span per request, named by the URL rule; unhandled exceptions reported.

- ``Flask.wsgi_app`` is the request's span (``spyglass.web.wsgi``), inside any middleware
  the app put around ``wsgi_app``;
- ``Flask.full_dispatch_request`` reads the URL rule (``/users/<int:uid>``) and the user
  while the request context is there;
- ``Flask.handle_exception`` reports the exception Flask turns into a 500, first, as its
  ``got_request_exception`` signal does (the response and Flask's own logging are
  unchanged).

Class attributes are patched, so an app whose module did ``from flask import Flask``
first, and subclasses of Flask, are covered alike. The user is read only if the app
already loaded it (flask-login's ``current_user``, or ``g.user``): reading never runs
the app's user loader.
"""
import functools

from ._patch import Patch, Supports
from ..errors import capture
from ..errors.scope import current as current_scope, current_request
from ..web import user_from, wsgi

SUPPORTS = Supports("flask", "2.2")
TIMING = None
PATCHES = (
    Patch("flask", "Flask", wsgi_app="traced_wsgi_app", full_dispatch_request="reading_route",
          handle_exception="reporting_exception"),
)


def traced_wsgi_app(original, agent):
    return wsgi.traced_method(original)


def reading_route(original, agent):
    from flask import globals as flask_globals

    request_var = getattr(flask_globals, "_cv_request", None)
    app_var = getattr(flask_globals, "_cv_app", None)

    def full_dispatch_request(self):
        try:
            return original(self)
        finally:
            request = current_scope().request  # current_request(), without its call
            if request is not None and request_var is not None:
                _annotate(request, request_var.get(None), app_var.get(None))

    return full_dispatch_request


def reporting_exception(original, agent):
    def handle_exception(self, e):
        _on_exception(e)
        return original(self, e)

    return handle_exception


def _annotate(request, request_context, app_context):
    """What only the request context knows: the URL rule, the user, the parsed body."""
    try:
        if request_context is not None:
            flask_request = request_context.request
            rule = flask_request.url_rule
            if rule is not None:
                request.route = rule.rule
            request.data = functools.partial(_parsed_body, flask_request)
        if app_context is not None:
            user = _loaded_user(app_context.g)
            request.framework_user = None if user is None else user_from(
                user, request.agent.config.send_default_pii)
    except Exception:
        pass  # the span is then named by the method alone


def _loaded_user(g):
    """The user object the app loaded, or None."""
    attributes = getattr(g, "__dict__", {})
    user = attributes.get("_login_user")  # flask-login, once the app asked for current_user
    return attributes.get("user") if user is None else user


def _parsed_body(flask_request):
    """The form or JSON the view already read (never reads the body itself)."""
    cached = flask_request.__dict__
    form = cached.get("form")
    if form:
        return {key: form.getlist(key) if len(form.getlist(key)) > 1 else form[key] for key in form}
    json_body = getattr(flask_request, "_cached_json", (Ellipsis, Ellipsis))
    for value in json_body:
        if value is not Ellipsis:
            return value
    return None


def _on_exception(exception):
    request = current_request()
    if request is None or exception is None:
        return
    try:
        from flask import globals as flask_globals

        request_context = flask_globals._cv_request.get(None)
        app_context = flask_globals._cv_app.get(None)
        _annotate(request, request_context, app_context)
    except Exception:
        pass
    capture.capture_unhandled(exception, request)
