"""The registry of instrumentation: module the app imports -> the spyglass module that
patches it. The autowrapt entry points and ``spyglass.init()`` both register every hook
from this one table; a hook runs only if and when the app imports that module.

Each instrumentation module declares at its top what it patches and has
``install(agent, module)``, called with the freshly imported module. The timing key names
the ``timing.<key>`` setting whose ``false`` switches the library off.
"""
import importlib
import logging

log = logging.getLogger("spyglass")

# imported module -> (instrumentation module, timing key or None)
REGISTRY = {
    "opentracing": ("spyglass.instrument.opentracing_global", None),
    # web frameworks, errors and logging
    "logging": ("spyglass.instrument.logging", None),
    "flask": ("spyglass.instrument.flask", None),
    "django": ("spyglass.instrument.django", None),
    "starlette.applications": ("spyglass.instrument.starlette", None),
    # databases
    "sqlite3": ("spyglass.instrument.sqlite3", "dbapi2_sqlite3"),
    "psycopg2": ("spyglass.instrument.psycopg2", "dbapi2_psycopg2"),
    "psycopg": ("spyglass.instrument.psycopg", "dbapi2_psycopg"),
    "pymysql": ("spyglass.instrument.pymysql", "dbapi2_pymysql"),
    "MySQLdb": ("spyglass.instrument.mysqldb", "dbapi2_mysqldb"),
    # other datastores
    "pysolr": ("spyglass.instrument.pysolr", "pysolr"),
    "redis": ("spyglass.instrument.redis", "redis"),
    # outbound HTTP
    "urllib3": ("spyglass.instrument.urllib3", "urllib3"),
    "requests": ("spyglass.instrument.requests", "requests"),
    "httpx": ("spyglass.instrument.httpx", "httpx"),
    "http.client": ("spyglass.instrument.httplib", "httplib"),
    # templates
    "jinja2": ("spyglass.instrument.jinja2", "jinja2"),
    "django.template.base": ("spyglass.instrument.django_templates", "django_templates"),
    # servers
    "uwsgi": ("spyglass.instrument.uwsgi", None),
    "gunicorn.workers.base": ("spyglass.instrument.gunicorn", None),
    # process pools: multiprocessing, concurrent.futures, billiard (Celery)
    "multiprocessing.util": ("spyglass.instrument.multiprocessing", None),
}

# Drivers named in the ``dbapi2_modules`` setting are patched by this one.
GENERIC_DBAPI = ("spyglass.instrument.dbapi2_generic", "dbapi2_generic")

# Exceptions nothing caught, unless ``capture_unhandled`` is false: sys and threading are
# loaded before the app starts (their hooks go in at once), asyncio when the app imports it.
UNHANDLED = {
    "sys": ("spyglass.instrument.unhandled", None),
    "threading": ("spyglass.instrument.unhandled", None),
    "asyncio.base_events": ("spyglass.instrument.unhandled", None),
}


def register_hooks(agent):
    import wrapt

    hooks = dict(REGISTRY)
    if agent.config.capture_unhandled:
        hooks.update(UNHANDLED)
    for module_name in agent.config.dbapi2_modules:
        hooks.setdefault(module_name, GENERIC_DBAPI)
    for module_name, (instrumentation, timing_key) in hooks.items():
        wrapt.register_post_import_hook(_hook(agent, instrumentation, timing_key), module_name)


def _hook(agent, instrumentation, timing_key):
    def on_import(module):
        install(agent, module, instrumentation, timing_key)

    return on_import


def install(agent, module, instrumentation, timing_key=None):
    """Patch one library; an error is logged once and the app's import goes on."""
    name = module.__name__
    if timing_key is not None and agent.config.threshold(timing_key) is False:
        log.debug("spyglass: %s instrumentation off (timing.%s = false)", name, timing_key)
        return
    try:
        importlib.import_module(instrumentation).install(agent, module)
        agent.instrumented.append(name)
    except Exception:
        log.exception("spyglass: could not instrument %s; it runs uninstrumented", name)
