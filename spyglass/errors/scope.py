"""Event scopes: the user, tags, contexts and breadcrumbs that go with error events, and
the request being handled.

The current scope lives in a ContextVar, so each thread and asyncio task sees its own.
A scope is a layer over its parent: reading merges the chain (only when an event is
built), writing touches only the layer itself. Each traced request gets a fresh layer,
so what a request sets dies with it; ``with spyglass.scope():`` does the same for any
block of code. Outside both, changes go to the process-wide root scope.
"""
import collections
import time
from contextvars import ContextVar

MAX_BREADCRUMBS = 100


class EventScope:
    # No __slots__: class-level defaults make a request's layer a two-attribute object.
    user = None          # dict, or None
    tags = None          # dict
    contexts = None      # dict of dicts
    breadcrumbs = None   # deque
    fingerprint = None   # list of strings, Sentry's "{{ default }}" convention
    request = None       # the spyglass.web.RequestTrace this scope belongs to

    def __init__(self, parent=None, request=None):
        self.parent = parent
        # Always set, also to None: read on every request, and an instance's is the cheap read
        self.request = request if request is not None or parent is None else parent.request

    # -- writing (this layer only) -----------------------------------------------------

    def set_user(self, user):
        self.user = dict(user) if user else {}

    def set_tag(self, key, value):
        if self.tags is None:
            self.tags = {}
        self.tags[str(key)] = value

    def set_context(self, name, values):
        if self.contexts is None:
            self.contexts = {}
        self.contexts[str(name)] = dict(values) if values is not None else None

    def set_fingerprint(self, parts):
        self.fingerprint = [str(part) for part in parts] if parts else None

    def add_breadcrumb(self, message=None, category=None, level="info", data=None,
                       timestamp=None):
        if self.breadcrumbs is None:
            self.breadcrumbs = collections.deque(maxlen=MAX_BREADCRUMBS)
        crumb = {"timestamp": time.time() if timestamp is None else timestamp,
                 "level": str(level)}
        if category is not None:
            crumb["category"] = str(category)
        if message is not None:
            crumb["message"] = str(message)
        if data:
            crumb["data"] = dict(data)
        self.breadcrumbs.append(crumb)

    # -- reading (the whole chain, nearest layer winning) -------------------------------

    def chain(self):
        """This scope and its parents, outermost first."""
        layers = []
        layer = self
        while layer is not None:
            layers.append(layer)
            layer = layer.parent
        layers.reverse()
        return layers

    def merged(self):
        """``(user, tags, contexts, breadcrumbs, fingerprint)`` as seen from here."""
        user, tags, contexts, crumbs, fingerprint = None, {}, {}, [], None
        for layer in self.chain():
            if layer.user is not None:
                user = layer.user or None  # {} clears: set_user(None)
            if layer.tags:
                tags.update(layer.tags)
            if layer.contexts:
                contexts.update(layer.contexts)
            if layer.breadcrumbs:
                crumbs.extend(layer.breadcrumbs)
            if layer.fingerprint is not None:
                fingerprint = layer.fingerprint
        crumbs.sort(key=lambda crumb: crumb["timestamp"])
        contexts = {name: values for name, values in contexts.items() if values is not None}
        return user, tags, contexts, crumbs[-MAX_BREADCRUMBS:], fingerprint


ROOT = EventScope()
_current: ContextVar = ContextVar("spyglass.scope", default=ROOT)
current = _current.get
set_current, reset_current = _current.set, _current.reset  # for the request lifecycle


def current_request():
    """The RequestTrace of the request being handled here, or None."""
    return _current.get().request


class isolated:
    """``with spyglass.scope() as scope:``: what is set inside stays inside.

    Also used by the request integrations (with ``request=``) to give each request its
    own layer.
    """

    __slots__ = ("_scope", "_token", "_parent")

    def __init__(self, request=None):
        self._parent = _current.get()
        self._scope = EventScope(self._parent, request)
        self._token = None

    def __enter__(self):
        self._token = _current.set(self._scope)
        return self._scope

    def __exit__(self, *exc_info):
        try:
            _current.reset(self._token)
        except ValueError:  # left in another context (an async generator): restore anyway
            _current.set(self._parent)
        return False


def push_request_scope(request, parent=None):
    """Enter a fresh layer for one request over ``parent`` (default: the current scope,
    for a caller that has not just read it); returns the token for ``pop_scope``."""
    return _current.set(EventScope(_current.get() if parent is None else parent, request))


def pop_scope(token, parent):
    try:
        _current.reset(token)
    except ValueError:
        _current.set(parent)
