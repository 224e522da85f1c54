"""psycopg 3, sync and asyncio. Its classes are pure Python, so their methods are replaced
in place: objects stay exactly the driver's, and ``row_factory``, ``cursor_factory``,
``ClientCursor``/``RawCursor`` (which inherit the patched methods), server-side cursors and
pipelines keep working.

| patched | how |
|---|---|
| ``Connection.connect`` / ``AsyncConnection.connect`` (= ``psycopg.connect``) | a ``connect`` span |
| ``Cursor``, ``ServerCursor``, ``AsyncCursor``, ``AsyncServerCursor``: ``execute/executemany`` | spans, ``db.system`` = ``postgresql`` |
| ``Connection.commit/rollback``, ``AsyncConnection.commit/rollback`` | spans |

``Connection.execute`` makes a cursor and calls its ``execute``: one span. psycopg has no
``callproc``, so none is added. ``sql.Composed`` statements are rendered, then obfuscated.
"""
from ._dbapi import Database, patch_methods


def install(agent, module):
    database = Database(agent, "dbapi2_psycopg", "postgresql", "postgresql", _describe)
    for cls in (module.Cursor, module.ServerCursor):
        patch_methods(cls, {
            "execute": database.wrap_statement,
            "executemany": lambda method: database.wrap_statement(method, batch=True),
        })
    for cls in (module.AsyncCursor, module.AsyncServerCursor):
        patch_methods(cls, {
            "execute": database.wrap_statement_async,
            "executemany": lambda method: database.wrap_statement_async(method, batch=True),
        })
    patch_methods(module.Connection, {
        "commit": lambda method: database.wrap_operation(method, "COMMIT"),
        "rollback": lambda method: database.wrap_operation(method, "ROLLBACK"),
    })
    patch_methods(module.AsyncConnection, {
        "commit": lambda method: database.wrap_operation_async(method, "COMMIT"),
        "rollback": lambda method: database.wrap_operation_async(method, "ROLLBACK"),
    })
    _trace_connect(module, module.Connection, database.wrap_connect)
    _trace_connect(module, module.AsyncConnection, database.wrap_connect_async)


def _trace_connect(module, cls, wrap):
    """``connect`` is a classmethod: trace its function, keep it a classmethod."""
    descriptor = cls.__dict__.get("connect")
    if not isinstance(descriptor, classmethod):
        return
    bound = cls.connect
    traced = classmethod(wrap(descriptor.__func__))
    cls.connect = traced
    if getattr(module, "connect", None) == bound:  # psycopg.connect = Connection.connect
        module.connect = cls.connect


def _describe(connection):
    info = connection.info
    host = info.host
    found = {"db.namespace": info.dbname}
    if host and not host.startswith("/"):
        found["server.address"] = host
        found["server.port"] = info.port
    return found
