"""Any PEP 249 driver named in the ``dbapi2_modules`` setting, e.g.
``dbapi2_modules = pg8000, oracledb``. Nothing is known about such a driver beyond PEP 249,
so its objects are wrapped in ``wrapt.ObjectProxy``s (``isinstance`` still holds through
them), made per driver class with only the methods that class has.

``connect`` returns a proxy of the connection (a ``connect`` span, ``db.namespace`` and
``server.*`` from its keywords: ``host``, ``port``, ``database``/``dbname``/``db``); its
``cursor()`` a proxy of the cursor; ``commit``/``rollback`` and the cursor's
``execute``/``executemany``/``callproc`` are spans, ``db.system`` guessed from the module's
name (``other_sql`` when unknown); ``__enter__`` gives the proxy where the driver gives the
object itself.

The drivers spyglass knows (sqlite3, psycopg2, psycopg, pymysql, MySQLdb) have their own,
cheaper instrumentation; naming them here changes nothing.
"""
import wrapt

from ._dbapi import ClassCache, DriverInstrumentation, connection_of
from ._patch import Patch

SUPPORTS = None  # any driver: PEP 249 is all it is asked to follow
TIMING = "dbapi2_generic"
PATCHES = (
    Patch(None, connect="traced_connect"),  # None: the driver's module, as named
)

# module-name fragment -> (db.system, obfuscator dialect)
KNOWN_SYSTEMS = (
    ("sqlite", ("sqlite", "sqlite")),
    ("psycopg", ("postgresql", "postgresql")),
    ("pg", ("postgresql", "postgresql")),
    ("mysql", ("mysql", "mysql")),
    ("maria", ("mariadb", "mysql")),
    ("oracle", ("oracle", "generic")),
    ("cx_oracle", ("oracle", "generic")),
    ("pyodbc", ("mssql", "generic")),
    ("pymssql", ("mssql", "generic")),
    ("duckdb", ("duckdb", "generic")),
)


class Proxies:
    """One driver's instrumentation and the proxy classes made for its connections and
    cursors (per driver class, with only the methods that class has)."""

    def __init__(self, agent, module):
        system, dialect = system_of(module.__name__)
        self.driver = driver = DriverInstrumentation(agent, TIMING, system, dialect)

        def cursor_proxy(cls):
            methods = {}
            for name, batch in (("execute", False), ("executemany", True)):
                if hasattr(cls, name):
                    methods[name] = driver.wrap_statement(_forward(name), batch=batch)
            if hasattr(cls, "callproc"):
                methods["callproc"] = driver.wrap_operation(_forward("callproc"), "CALL",
                                                              _proxied_connection)
            if hasattr(cls, "__enter__"):
                methods["__enter__"] = _enter
            return type("TracedCursor", (wrapt.ObjectProxy,), methods)

        cursor_proxies = ClassCache(cursor_proxy)

        def connection_proxy(cls):
            methods = {}
            if hasattr(cls, "cursor"):
                methods["cursor"] = _cursor_method(cursor_proxies)
            for name, operation in (("commit", "COMMIT"), ("rollback", "ROLLBACK")):
                if hasattr(cls, name):
                    methods[name] = driver.wrap_operation(_forward(name), operation)
            if hasattr(cls, "__enter__"):
                methods["__enter__"] = _enter
            return type("TracedConnection", (wrapt.ObjectProxy,), methods)

        self.connection_proxies = ClassCache(connection_proxy)


setup = Proxies


def traced_connect(connect, proxies):
    connection_proxies, driver = proxies.connection_proxies, proxies.driver

    def connect_and_wrap(*args, **kwargs):
        connection = connect(*args, **kwargs)
        _remember_server(connection, driver, kwargs)
        return connection_proxies(type(connection))(connection)

    return driver.wrap_connect(connect_and_wrap)


# connect() keywords that name the server and database, by the drivers' usual names
SERVER_KEYWORDS = (("server.address", ("host", "hostname", "server")),
                   ("server.port", ("port",)),
                   ("db.namespace", ("database", "dbname", "db")))


def _remember_server(connection, driver, kwargs):
    """``db.namespace`` and ``server.*`` from connect()'s keywords: all PEP 249 says of a
    connection is how to query on it. Never the user or a password."""
    try:
        attributes = {"db.system": driver.system}
        for attribute, keywords in SERVER_KEYWORDS:
            for keyword in keywords:
                value = kwargs.get(keyword)
                if isinstance(value, (str, int)) and value != "":
                    attributes[attribute] = value
                    break
        connection._spyglass_db = driver.shared(attributes)
    except Exception:  # a connection that takes no attributes: described by db.system only
        pass


def system_of(module_name):
    name = module_name.lower()
    for fragment, found in KNOWN_SYSTEMS:
        if fragment in name:
            return found
    return "other_sql", "generic"


def _forward(name):
    """A method of the proxy that calls the wrapped object's method of that name."""
    def forward(proxy, *args, **kwargs):
        return getattr(proxy.__wrapped__, name)(*args, **kwargs)

    forward.__name__ = name
    return forward


def _enter(proxy):
    # ``with connect() as conn`` / ``with conn.cursor() as cursor``: a driver's __enter__
    # returns the object itself, which would be the unproxied, untraced one.
    wrapped = proxy.__wrapped__
    entered = wrapped.__enter__()
    return proxy if entered is wrapped else entered


def _cursor_method(cursor_proxies):
    def cursor(proxy, *args, **kwargs):
        made = proxy.__wrapped__.cursor(*args, **kwargs)
        return cursor_proxies(type(made))(made)

    return cursor


def _proxied_connection(cursor_proxy):
    return connection_of(cursor_proxy.__wrapped__)
