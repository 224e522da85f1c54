"""mysqlclient (``MySQLdb``): its cursors and connection class are Python (on the C
``_mysql`` connection), so their methods are replaced in place; objects stay the driver's.

``connect`` (also named ``Connect`` and ``Connection``) is a ``connect`` span;
``BaseCursor.execute/executemany/callproc`` are spans, ``db.system`` = ``mysql``, the
executes executemany makes itself part of its span; ``Connection.commit/rollback`` (the C
base's methods, set on the Python class) are spans.
"""
from ._dbapi import (DriverInstrumentation, traced_callproc, traced_commit, traced_execute,
                     traced_executemany, traced_rollback)
from ._patch import Patch, Supports, alias

# Declared as the other MySQL driver's (instrument/pymysql.py) is: the same DB-API methods.
SUPPORTS = Supports("mysqlclient", "1.4")
TIMING = "dbapi2_mysqldb"
PATCHES = (
    Patch("MySQLdb", "cursors.BaseCursor", execute="traced_execute",
          executemany="traced_executemany", callproc="traced_callproc"),
    # the C base's methods, set on the Python class
    Patch("MySQLdb", "connections.Connection", inherited=True, commit="traced_commit",
          rollback="traced_rollback"),
    # MySQLdb.connect, and the same function by its other names
    Patch("MySQLdb", connect="traced_connect", Connect="same_connect",
          Connection="same_connect"),
)


def traced_connect(connect, driver):
    return driver.wrap_connect(_remembering_port(connect))


def same_connect(connect, driver):
    import MySQLdb

    return alias(MySQLdb.connect, connect)


def _remembering_port(connect):
    # The connection keeps its host and database but not the port it was given.
    def connect_and_remember(*args, **kwargs):
        connection = connect(*args, **kwargs)
        try:
            port = kwargs.get("port", args[4] if len(args) > 4 else None)
            if port and not kwargs.get("unix_socket"):
                connection._spyglass_port = int(port)
        except Exception:
            pass
        return connection

    return connect_and_remember


def _describe(connection):
    name = getattr(connection, "database", None) or getattr(connection, "db", None)
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    found = {"db.namespace": name}
    host = getattr(connection, "host", None)
    if host and host != "localhost":  # "localhost" means the Unix socket to mysqlclient
        found["server.address"] = host.decode() if isinstance(host, bytes) else host
        found["server.port"] = getattr(connection, "_spyglass_port", 3306)
    return found


setup = DriverInstrumentation.setup_for(TIMING, "mysql", "mysql", _describe)  # what the patches share
