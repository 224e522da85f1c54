"""sqlite3, through its own ``factory=`` hooks: no proxies.

``connect`` (also ``sqlite3.dbapi2.connect``) asks for a traced subclass of the
``factory`` class requested (default ``sqlite3.Connection``) and is a ``connect`` span.
That connection's ``cursor`` makes a traced subclass of the cursor class requested; its
``execute/executemany/executescript`` shortcuts go through a traced cursor; ``commit`` and
``rollback`` and the cursor's statements are spans, ``db.system`` = ``sqlite``.

Connections and cursors are instances of subclasses of the driver's classes (or of the
app's own factory classes) with the same names: ``isinstance``, ``Connection.backup`` and
``row_factory`` work as before. A ``factory`` that is a function, not a class, is used as
given and its objects are not traced.
"""
from ._dbapi import ClassCache, DriverInstrumentation, subclass
from ._patch import Patch, alias, like

SUPPORTS = None  # the standard library's own
TIMING = "dbapi2_sqlite3"
PATCHES = (
    Patch("sqlite3", connect="traced_connect"),
    Patch("sqlite3", "dbapi2", connect="same_connect"),  # the same function, by another name
)

STATEMENT_METHODS = ("execute", "executemany", "executescript")


class SQLite:
    """What the patches share: the driver's instrumentation and its traced classes."""

    def __init__(self, agent, module):
        self.module = module
        self.driver = driver = DriverInstrumentation(agent, TIMING, "sqlite", "sqlite")
        cursor_classes = ClassCache(lambda base: subclass(base, {
            "execute": driver.wrap_statement(base.execute),
            "executemany": driver.wrap_statement(base.executemany, batch=True),
            "executescript": driver.wrap_statement(base.executescript),
        }))
        default_cursor = cursor_classes(module.Cursor)
        self.connection_classes = ClassCache(lambda base: _connection_subclass(
            base, module, driver, cursor_classes, default_cursor))


setup = SQLite


def traced_connect(connect, sqlite):
    connection_classes, module, driver = sqlite.connection_classes, sqlite.module, sqlite.driver

    def prepare(args, kwargs):
        # connect(database, timeout, detect_types, isolation_level, check_same_thread,
        #         factory, cached_statements, uri, *, autocommit)
        if len(args) > 5:
            args = args[:5] + (connection_classes(args[5]),) + args[6:]
        else:
            kwargs["factory"] = connection_classes(kwargs.get("factory", module.Connection))
        return args, kwargs

    traced = driver.wrap_connect(connect, prepare)

    def connect_and_describe(*args, **kwargs):
        connection = traced(*args, **kwargs)
        _remember_name(connection, driver, args, kwargs)
        return connection

    return connect_and_describe


def same_connect(connect, sqlite):
    return alias(sqlite.module.connect, connect)


def _connection_subclass(base, module, driver, cursor_classes, default_cursor):
    base_cursor = base.cursor
    methods = {
        "cursor": _traced_cursor_method(base_cursor, cursor_classes, default_cursor,
                                        base_cursor is module.Connection.cursor),
        "commit": driver.wrap_operation(base.commit, "COMMIT"),
        "rollback": driver.wrap_operation(base.rollback, "ROLLBACK"),
    }
    for name in STATEMENT_METHODS:
        # The C shortcuts make a plain Cursor internally; do what they do with a traced
        # one. A factory class that defines its own shortcut keeps it.
        if getattr(base, name) is getattr(module.Connection, name):
            methods[name] = _shortcut(name, default_cursor, getattr(base, name),
                                      module.Connection.cursor)
    # A __dict__ on connections holds what describes them (db.namespace).
    return subclass(base, methods, keep_dict=True)


def _traced_cursor_method(base_cursor, cursor_classes, default_cursor, driver_default):
    # driver_default: the factory class does not define cursor() itself, so the default
    # cursor class is the driver's and can be swapped for the traced one.
    def cursor(self, *args, **kwargs):
        if args:
            args = (cursor_classes(args[0]),) + args[1:]
        elif "factory" in kwargs:
            kwargs["factory"] = cursor_classes(kwargs["factory"])
        elif driver_default:
            return base_cursor(self, default_cursor)
        return base_cursor(self, *args, **kwargs)

    return like(cursor, base_cursor)


def _shortcut(name, default_cursor, original, driver_cursor):
    method = getattr(default_cursor, name)

    def shortcut(self, *args, **kwargs):
        # As the C shortcut does: the driver's cursor() (which applies row_factory), not
        # an override of it, then the statement.
        return method(driver_cursor(self, default_cursor), *args, **kwargs)

    return like(shortcut, original)


def _remember_name(connection, driver, args, kwargs):
    try:
        name = args[0] if args else kwargs.get("database")
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        attributes = {"db.system": "sqlite"}
        if name is not None:
            attributes["db.namespace"] = _without_uri_query(str(name))
        connection._spyglass_db = driver.shared(attributes)
    except Exception:  # an untraced factory's connection may refuse attributes
        pass


def _without_uri_query(name):
    # file:db?mode=ro&… : the query holds options, never the database's name.
    return name.split("?", 1)[0] if name.startswith("file:") else name
