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

# Declared as the other MySQL driver's (instrument/mysqldb.py) is: the same DB-API methods.
SUPPORTS = Supports("pymysql", "0.9")
TIMING = "dbapi2_pymysql"
PATCHES = (
    Patch("pymysql", "cursors.Cursor", execute="traced_execute",
          executemany="traced_executemany", callproc="traced_callproc"),
    Patch("pymysql", "connections.Connection", connect="traced_connect_method",
          commit="traced_commit", rollback="traced_rollback"),
)
setup = DriverInstrumentation.setup_for(TIMING, "mysql", "mysql", describe_mysql)

