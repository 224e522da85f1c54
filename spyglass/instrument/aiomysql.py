"""aiomysql (asyncio, on PyMySQL's protocol code): its classes are pure Python, so their
coroutine methods are replaced in place, as PyMySQL's are; objects stay the driver's.
The generic DB-API path cannot take it: its methods are coroutines.

| patched | how |
|---|---|
| ``aiomysql.cursors.Cursor.execute/executemany/callproc`` | spans, ``db.system`` = ``mysql``; the executes that executemany makes itself are part of its span |
| ``aiomysql.connection.Connection._connect`` | a ``connect`` span (opening, and reopening on ``ping``) |
| ``aiomysql.connection.Connection.commit/rollback`` | spans |

``DictCursor``, ``SSCursor`` and the app's own cursor classes inherit the patched methods.
"""
from ._dbapi import (DriverInstrumentation, describe_mysql, traced_callproc, traced_commit,
                     traced_connect_method, traced_execute, traced_executemany,
                     traced_rollback)
from ._patch import Supports
from .pymysql import protocol_patches

SUPPORTS = Supports("aiomysql", "0.1")
TIMING = "aiomysql"
PATCHES = protocol_patches("aiomysql", "connection.Connection", "_connect")
setup = DriverInstrumentation.setup_for(TIMING, "mysql", "mysql", describe_mysql)
