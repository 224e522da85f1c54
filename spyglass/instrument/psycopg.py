"""psycopg 3, sync and asyncio. Its classes are pure Python, so their methods are replaced
in place: objects stay exactly the driver's, and ``row_factory``, ``cursor_factory``,
``ClientCursor``/``RawCursor`` (which inherit the patched methods), server-side cursors and
pipelines keep working.

``connect`` (``Connection.connect``, ``AsyncConnection.connect``, a classmethod kept
one) is a ``connect`` span; the cursors' ``execute/executemany`` (``Cursor``,
``ServerCursor`` and their async twins) are spans, ``db.system`` = ``postgresql``; the
connections' ``commit/rollback`` are spans.

``Connection.execute`` makes a cursor and calls its ``execute``: one span. psycopg has no
``callproc``, so none is added. ``sql.Composed`` statements are rendered, then obfuscated.
"""
from ._dbapi import (DriverInstrumentation, describe_libpq, traced_commit, traced_execute,
                     traced_executemany, traced_rollback)
from ._patch import Patch, Supports, alias

SUPPORTS = Supports("psycopg", "3.0")
TIMING = "dbapi2_psycopg"
PATCHES = (
    # The asyncio classes' coroutine methods are replaced by coroutine functions.
    *(Patch("psycopg", cursor, execute="traced_execute", executemany="traced_executemany")
      for cursor in ("Cursor", "ServerCursor", "AsyncCursor", "AsyncServerCursor")),
    *(Patch("psycopg", connection, commit="traced_commit", rollback="traced_rollback",
            connect="traced_connect")  # a classmethod, kept one
      for connection in ("Connection", "AsyncConnection")),
    Patch("psycopg", connect="same_connect"),  # psycopg.connect is Connection.connect
)
setup = DriverInstrumentation.setup_for(TIMING, "postgresql", "postgresql", describe_libpq)


def traced_connect(connect, driver):
    return driver.wrap_connect(connect)


def same_connect(connect, driver):
    import psycopg

    return alias(psycopg.Connection.connect, connect)
