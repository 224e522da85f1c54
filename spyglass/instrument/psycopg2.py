"""psycopg2 (and psycopg2-binary), through its own ``connection_factory`` and
``cursor_factory`` hooks: no proxies.

``connect`` asks for a traced subclass of the ``connection_factory`` requested (default
``psycopg2.extensions.connection``) and is a ``connect`` span. That connection's ``cursor``
makes a traced subclass of the cursor class asked for (``cursor_factory=`` argument, else
``conn.cursor_factory``, else ``psycopg2.extensions.cursor``); ``commit/rollback`` and the
cursor's ``execute/executemany/callproc`` are spans, ``db.system`` = ``postgresql``.

Connections and cursors are instances of subclasses of the classes the app asked for, with
the same names, so ``extras.register_type/register_json`` (C type checks), ``RealDictCursor``,
``DictConnection``, named cursors and ``execute_values`` work unchanged. A connection class
whose own ``cursor()`` picks a default cursor class (``extras.DictConnection``) keeps it: the
cursor it returns is given the traced subclass of its class. A ``cursor_factory`` that is a
function, not a class, is used as given and its cursors are not traced.
"""
from ._dbapi import (ClassCache, DriverInstrumentation, describe_libpq, subclass,
                     traced_callproc)
from ._patch import Patch, Supports, like

SUPPORTS = Supports(("psycopg2", "psycopg2-binary"), "2.7")
TIMING = "dbapi2_psycopg2"
PATCHES = (
    Patch("psycopg2", connect="traced_connect"),
)


class Psycopg2:
    """What the patch shares: the driver's instrumentation and its traced classes."""

    def __init__(self, agent, module):
        self.extensions = extensions = module.extensions
        self.driver = driver = DriverInstrumentation(agent, TIMING, "postgresql", "postgresql",
                                            describe_libpq)
        cursor_classes = ClassCache(lambda base: subclass(base, {
            "execute": driver.wrap_statement(base.execute),
            "executemany": driver.wrap_statement(base.executemany, batch=True),
            "callproc": traced_callproc(base.callproc, driver),
        }))
        self.connection_classes = ClassCache(lambda base: subclass(base, {
            "cursor": _traced_cursor_method(base, extensions, cursor_classes),
            "commit": driver.wrap_operation(base.commit, "COMMIT"),
            "rollback": driver.wrap_operation(base.rollback, "ROLLBACK"),
        }, keep_dict=True))


setup = Psycopg2


def traced_connect(connect, psycopg2):
    connection_classes, extensions = psycopg2.connection_classes, psycopg2.extensions

    def prepare(args, kwargs):
        # connect(dsn=None, connection_factory=None, cursor_factory=None, **kwargs)
        if len(args) > 1:
            factory = args[1] or extensions.connection
            args = (args[0], connection_classes(factory)) + args[2:]
        else:
            factory = kwargs.get("connection_factory") or extensions.connection
            kwargs["connection_factory"] = connection_classes(factory)
        return args, kwargs

    return psycopg2.driver.wrap_connect(connect, prepare)


def _traced_cursor_method(base, extensions, cursor_classes):
    base_cursor = base.cursor
    # The class's own cursor() (DictConnection's) chooses its default cursor class itself.
    driver_default = base_cursor is extensions.connection.cursor
    default_cursor = extensions.cursor

    def cursor(self, *args, **kwargs):
        # cursor(name=None, cursor_factory=None, withhold=False, scrollable=None)
        if len(args) > 1:
            args = (args[0], cursor_classes(args[1] or self.cursor_factory or default_cursor)) + args[2:]
        elif kwargs.get("cursor_factory") is not None:
            kwargs["cursor_factory"] = cursor_classes(kwargs["cursor_factory"])
        elif driver_default:
            kwargs["cursor_factory"] = cursor_classes(self.cursor_factory or default_cursor)
        else:
            made = base_cursor(self, *args, **kwargs)
            return _traced_instance(made, cursor_classes)
        return base_cursor(self, *args, **kwargs)

    return like(cursor, base_cursor)


def _traced_instance(cursor, cursor_classes):
    """Give a cursor made by a connection class's own cursor() the traced subclass of its
    class; possible when that class is a Python one (same layout), as extras' are."""
    cls = type(cursor)
    if not cursor_classes.is_traced(cls):
        traced = cursor_classes(cls)
        if traced is not cls:
            try:
                cursor.__class__ = traced
            except TypeError:  # the driver's own C class: left untraced
                pass
    return cursor
