"""mysqlclient (``MySQLdb``): its cursors and connection class are Python (on the C
``_mysql`` connection), so their methods are replaced in place; objects stay the driver's.

| patched | how |
|---|---|
| ``MySQLdb.connect`` (= ``Connect``, ``Connection``) | a ``connect`` span |
| ``MySQLdb.cursors.BaseCursor.execute/executemany/callproc`` | spans, ``db.system`` = ``mysql``; the executes that executemany makes itself are part of its span |
| ``MySQLdb.connections.Connection.commit/rollback`` | spans (the methods are the C base's, set on the Python class) |
"""
import functools

from ._dbapi import Database, patch_methods


def install(agent, module):
    import MySQLdb.connections
    import MySQLdb.cursors

    database = Database(agent, "dbapi2_mysqldb", "mysql", "mysql", _describe)
    patch_methods(MySQLdb.cursors.BaseCursor, {
        "execute": database.wrap_statement,
        "executemany": lambda method: database.wrap_statement(method, batch=True),
        "callproc": lambda method: database.wrap_operation(method, "CALL", _connection_of),
    })
    patch_methods(MySQLdb.connections.Connection, {
        "commit": lambda method: database.wrap_operation(method, "COMMIT"),
        "rollback": lambda method: database.wrap_operation(method, "ROLLBACK"),
    }, inherited=("commit", "rollback"))
    original = module.connect
    traced = database.wrap_connect(_remembering_port(original))
    for name in ("connect", "Connect", "Connection"):
        if getattr(module, name, None) is original:
            setattr(module, name, traced)


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

    return functools.update_wrapper(connect_and_remember, connect)


def _connection_of(cursor):
    return cursor.connection


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
