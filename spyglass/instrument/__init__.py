"""The registry of instrumentation: the module the app imports -> the spyglass module that
patches it. The sensor's start registers one lazy hook per row of this table; a hook runs
only if and when the app imports that module.

Each instrumentation module declares at its top what it patches (``PATCHES``, see
``_patch``), the library versions it supports (``SUPPORTS``) and the ``timing.<key>``
setting whose ``false`` switches it off (``TIMING``), and may have a ``setup(agent, module)``
that makes what its patches share and a ``teardown(shared)`` that undoes what is no
attribute (listeners added through a library's own event API). ``install`` is the one
guard around all of it: outside the supported versions a library is left alone with one
log line; an error is logged once, what was patched of that module is undone, and the
app's import goes on. ``uninstall()`` puts every original back.
"""
import importlib
import logging

from . import _patch

log = logging.getLogger("spyglass")

# imported module -> the instrumentation module (in this package) that patches it
REGISTRY = {
    "opentracing": "opentracing_global",
    # web frameworks, errors and logging
    "logging": "logging",
    "flask": "flask",
    "django.core.handlers.base": "django",
    "django.core.handlers.exception": "django",
    "starlette.applications": "starlette",
    "aiohttp.web_app": "aiohttp",
    "tornado.web": "tornado",
    "pyramid.router": "pyramid",
    "pyramid.config.tweens": "pyramid",
    # databases
    "sqlite3": "sqlite3",
    "psycopg2": "psycopg2",
    "psycopg": "psycopg",
    "pymysql": "pymysql",
    "MySQLdb": "mysqldb",
    "asyncpg": "asyncpg",
    "aiomysql": "aiomysql",
    "sqlalchemy": "sqlalchemy",
    # other datastores
    "pysolr": "pysolr",
    "redis.client": "redis",
    "redis.asyncio.client": "redis",
    "pymemcache": "pymemcache",
    "memcache": "memcache",
    # outbound HTTP
    "urllib3": "urllib3",
    "requests": "requests",
    "httpx": "httpx",
    "http.client": "httplib",
    "aiohttp.client": "aiohttp",
    "tornado.httpclient": "tornado",
    # message buses
    "pika.channel": "pika",
    "pika.adapters.blocking_connection": "pika",
    "paho.mqtt.client": "paho",
    "nats.aio.client": "nats",
    # templates
    "jinja2": "jinja2",
    "django.template.base": "django_templates",
    "mako.template": "mako",
    "chameleon.template": "chameleon",
    # task queues
    "celery.app.base": "celery",
    "rq.job": "rq",
    "rq.queue": "rq",
    "rq.worker.base": "rq",
    # servers (uWSGI's own module is not imported: spyglass.instrument.uwsgi watches for it)
    "uwsgidecorators": "uwsgi",
    "gunicorn.workers.base": "gunicorn",
    # process pools: multiprocessing, concurrent.futures, billiard (Celery)
    "multiprocessing.util": "multiprocessing",
    "billiard.pool": "billiard",
}

# Exceptions nothing caught, unless ``capture_unhandled`` is false: sys and threading are
# loaded before the app starts (their hooks go in at once), asyncio when the app imports it.
UNHANDLED = {
    "sys": "unhandled",
    "threading": "unhandled",
    "asyncio.base_events": "unhandled",
}

# Drivers named in the ``dbapi2_modules`` setting are patched by this one.
GENERIC_DBAPI = "dbapi2_generic"

_hooked_agent = None   # the agent whose hooks patch; None after uninstall()
_shared = {}           # (instrumentation, driver or None) -> (agent, what its setup() made)
_skipped = set()       # instrumentations left alone: said once
_versions = {}         # distribution names -> the version installed (None: not found)


def register_hooks(agent):
    """One post-import hook per imported module of the registry (and per driver named in
    ``dbapi2_modules``); a module imported already is patched at once."""
    import wrapt

    global _hooked_agent
    _hooked_agent = agent
    hooks = dict(REGISTRY)
    if agent.config.capture_unhandled:
        hooks.update(UNHANDLED)
    for module_name in agent.config.dbapi2_modules:
        hooks.setdefault(module_name, GENERIC_DBAPI)
    for module_name, instrumentation in hooks.items():
        wrapt.register_post_import_hook(_hook(agent, instrumentation), module_name)


def _hook(agent, instrumentation):
    def on_import(module):
        if agent is _hooked_agent:  # not after uninstall() (wrapt cannot take a hook back)
            install(agent, module, instrumentation)

    return on_import


def install(agent, module, instrumentation):
    """Patch what ``instrumentation`` (a module of this package, by name) declares for
    ``module``, just imported; True when it is instrumented. Never raises."""
    name = module.__name__
    code = None
    try:
        code = importlib.import_module(f"{__name__}.{instrumentation}")
        if not _wanted(agent, code, instrumentation, name):
            return False
        shared = _shared_state(agent, code, instrumentation, module)
        for declared in code.PATCHES:
            if declared.module == name or declared.module is None:
                _patch.apply(declared, module, code, shared)
    except Exception:
        if code is not None:
            _patch.undo(code.__name__, name)
            _teardown(instrumentation, module)
        log.exception("spyglass: could not instrument %s; it runs uninstrumented", name)
        return False
    label = name if instrumentation == GENERIC_DBAPI else instrumentation  # a driver: its name
    if label not in agent.instrumented:
        agent.instrumented.append(label)
    return True


def uninstall():
    """Put back every original that instrumentation replaced, and stop the hooks from
    patching modules imported later."""
    global _hooked_agent
    if _hooked_agent is not None:
        _hooked_agent.instrumented.clear()
    _hooked_agent = None
    _patch.undo()
    for instrumentation, driver in list(_shared):
        _teardown(instrumentation, driver)
    _shared.clear()
    _skipped.clear()


def _teardown(instrumentation, module):
    """Undo what an instrumentation's ``setup`` (or a patch's ``make``) did beyond
    attributes, such as listeners added through a library's own event API: its optional
    ``teardown(shared)``. ``module``: the module or driver name it was set up for."""
    name = getattr(module, "__name__", module)
    key = (instrumentation, name if instrumentation == GENERIC_DBAPI else None)
    found = _shared.pop(key, None)
    if found is None:
        return
    try:
        teardown = getattr(importlib.import_module(f"{__name__}.{instrumentation}"),
                           "teardown", None)
        if teardown is not None:
            teardown(found[1])
    except Exception:
        log.exception("spyglass: could not undo all of %s's instrumentation", instrumentation)


def _wanted(agent, code, instrumentation, name):
    timing_key = code.TIMING
    if timing_key is not None and agent.config.threshold(timing_key) is False:
        log.debug("spyglass: %s instrumentation off (timing.%s = false)", name, timing_key)
        return False
    supports = code.SUPPORTS
    if supports is None:
        return True
    version = installed_version(supports, name)
    if version is None or supports.admits(version):
        return True  # a version we cannot read is given the benefit of the doubt
    if instrumentation not in _skipped:
        _skipped.add(instrumentation)
        log.warning("spyglass: %s %s is not a version spyglass supports (%s); it runs "
                    "uninstrumented", supports.names()[0], version, supports)
    return False


def installed_version(supports, module_name=None):
    """The version of the first of ``supports``' distributions installed, or None; looked
    up once each, first where the library's own package lies (the whole path is read only
    when not found there: a millisecond or more)."""
    names = supports.names()
    if names in _versions:
        return _versions[names]
    from importlib import metadata  # loaded already in practice (autowrapt, most libraries)

    near = _directory_of(module_name)
    searches = ([{"path": [near]}] if near is not None else []) + [{}]  # {}: all of sys.path
    version = None
    for search in searches:
        found = [found for name in names for found in metadata.distributions(name=name, **search)]
        if found:
            version = _version_of(found[0])
            break
    _versions[names] = version
    return version


def _version_of(distribution):
    """The ``Version`` field of a distribution's metadata, read off its header lines:
    ``distribution.version`` parses the whole file as e-mail (10 ms the first time in a
    process, for the e-mail parser's own first use; 0.5 ms each after), this takes a few
    microseconds. None when there is no such field."""
    text = (distribution.read_text("METADATA") or distribution.read_text("PKG-INFO")
            or distribution.read_text(""))  # the files Distribution.metadata reads, in order
    for line in (text or "").splitlines():
        if not line:  # the headers end at the first blank line
            break
        field, colon, value = line.partition(":")
        if colon and not line[0].isspace() and field.strip().lower() == "version":
            return value.strip()
    return None


def _directory_of(module_name):
    """The directory a top-level package (or module) was imported from, or None."""
    import os
    import sys

    top = sys.modules.get(module_name.partition(".")[0]) if module_name else None
    path = getattr(top, "__file__", None)
    if not path:
        return None
    path = os.path.dirname(path)
    return os.path.dirname(path) if hasattr(top, "__path__") else path


def _shared_state(agent, code, instrumentation, module):
    """What the instrumentation's ``setup(agent, module)`` makes, once per agent (per
    driver for the generic DB-API one): the second argument of every patch's ``make``."""
    setup = getattr(code, "setup", None)
    if setup is None:
        return agent
    key = (instrumentation, module.__name__ if instrumentation == GENERIC_DBAPI else None)
    found = _shared.get(key)
    if found is None or found[0] is not agent:
        found = _shared[key] = (agent, setup(agent, module))
    return found[1]
