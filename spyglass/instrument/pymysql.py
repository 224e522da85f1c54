"""PyMySQL: its classes are pure Python, so their methods are replaced in place and every
object stays exactly the driver's (``type(cursor) is DictCursor``); a ``cursorclass`` of
the app's, subclassing the driver's cursors, is traced through what it inherits.

``Cursor.execute/executemany/callproc`` are spans, ``db.system`` = ``mysql``, the executes
executemany makes itself part of its span; ``Connection.connect/commit/rollback`` are spans.
"""
from ._dbapi import (DriverInstrumentation, describe_mysql, traced_callproc, traced_commit,
                     traced_connect_method, traced_execute, traced_executemany,
                     traced_rollback)
from ._patch import Patch, Supports



def protocol_patches(package, connection, connect):
    """What PyMySQL's protocol code declares, in PyMySQL and in the drivers built on it
    (aiomysql, whose methods are coroutines: the factories make coroutine functions of
    them): ``connection``, the class; ``connect``, its method that opens the socket."""
    return (
        Patch(package, "cursors.Cursor", execute="traced_execute",
              executemany="traced_executemany", callproc="traced_callproc"),
        Patch(package, connection, commit="traced_commit", rollback="traced_rollback",
              **{connect: "traced_connect_method"}),
    )


# The same DB-API methods as the other MySQL driver's (instrument/mysqldb.py).
SUPPORTS = Supports("pymysql", "0.9")
TIMING = "dbapi2_pymysql"
PATCHES = protocol_patches("pymysql", "connections.Connection", "connect")
setup = DriverInstrumentation.setup_for(TIMING, "mysql", "mysql", describe_mysql)

