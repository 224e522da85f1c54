"""PyMySQL: its classes are pure Python, so their methods are replaced in place and every
object stays exactly the driver's (``type(cursor) is DictCursor``); a ``cursorclass`` of
the app's, subclassing the driver's cursors, is traced through what it inherits.

| patched | how |
|---|---|
| ``pymysql.cursors.Cursor.execute/executemany/callproc`` | spans, ``db.system`` = ``mysql``; the executes that executemany makes itself are part of its span |
| ``pymysql.connections.Connection.connect/commit/rollback`` | spans |
"""
from ._dbapi import Database, patch_methods


def install(agent, module):
    import pymysql.connections
    import pymysql.cursors

    database = Database(agent, "dbapi2_pymysql", "mysql", "mysql", _describe)
    patch_methods(pymysql.cursors.Cursor, {
        "execute": database.wrap_statement,
        "executemany": lambda method: database.wrap_statement(method, batch=True),
        "callproc": lambda method: database.wrap_operation(method, "CALL", _connection_of),
    })
    patch_methods(pymysql.connections.Connection, {
        "connect": lambda method: database.wrap_operation(method, "connect"),
        "commit": lambda method: database.wrap_operation(method, "COMMIT"),
        "rollback": lambda method: database.wrap_operation(method, "ROLLBACK"),
    })


def _connection_of(cursor):
    return cursor.connection


def _describe(connection):
    name = connection.db
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    found = {"db.namespace": name}
    if not getattr(connection, "unix_socket", None):
        found["server.address"] = connection.host
        found["server.port"] = connection.port
    return found
