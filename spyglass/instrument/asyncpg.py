"""asyncpg: a CLIENT span per round trip the app asks for, with the statement obfuscated as
the DB-API drivers' are. asyncpg is no PEP 249 driver and its classes are pure Python
(on a Cython protocol), so their coroutine methods are replaced in place: connections,
records and prepared statements stay the driver's own (``isinstance`` holds, through
the pool's connection proxies too).

| patched | how |
|---|---|
| ``Connection.execute/fetch/fetchrow/fetchval`` | a span each, ``db.system`` = ``postgresql`` |
| ``Connection.executemany/fetchmany`` | one span, ``db.operation.batch.size`` |
| ``Connection.prepare`` | a ``PREPARE <statement>`` span |
| ``PreparedStatement.fetch/fetchrow/fetchval/executemany/fetchmany`` | as the connection's |
| ``BaseCursor._bind_exec/_bind/_exec``, ``Cursor.forward`` | a span per round trip of a cursor (a prefetch, not a row): repeats fold into one span with a count |
| ``Connection.copy_from_table/copy_from_query/copy_to_table/copy_records_to_table`` | a ``COPY <table>`` span |
| ``Pool._acquire`` (``pool.acquire()``, and what ``pool.fetch()`` … do) | the wait, as ``spyglass.db.pool.wait_ms`` on the connection's next statement; a span of its own only when slow or failed |
| ``connect`` (= ``asyncpg.connect``) | a ``connect`` span |
| ``Connection.reset`` (the pool's, on release) | no span: what it runs is housekeeping |

Only the method the app called makes a span: what asyncpg runs inside it (a type
introspection, ``explain``'s query is the exception: it is the app's) is part of it.
"""
import contextvars
from functools import partial

from ._calls import OUTSIDE_SCOPE, time_ns
from ._dbapi import DriverInstrumentation, _inside_call, _length, timed
from ._patch import Patch, Supports, alias
from ..trace.context import get_active_scope

SUPPORTS = Supports("asyncpg", "0.22")
TIMING = "asyncpg"
PATCHES = (
    Patch("asyncpg", "connection.Connection",
          execute="traced_execute", fetch="traced_fetch", fetchrow="traced_fetchrow",
          fetchval="traced_fetchval", executemany="traced_executemany",
          fetchmany="traced_fetchmany", prepare="traced_prepare",
          copy_from_table="traced_copy_out", copy_from_query="traced_copy_query",
          copy_to_table="traced_copy_in", copy_records_to_table="traced_copy_in",
          reset="quiet_reset"),
    Patch("asyncpg", "prepared_stmt.PreparedStatement",
          fetch="traced_prepared_fetch", fetchrow="traced_prepared_fetchrow",
          fetchval="traced_prepared_fetchval", executemany="traced_prepared_executemany",
          fetchmany="traced_prepared_fetchmany"),
    Patch("asyncpg", "cursor.BaseCursor", _bind_exec="traced_cursor_fetch",
          _exec="traced_cursor_fetch", _bind="traced_cursor_open"),
    Patch("asyncpg", "cursor.Cursor", forward="traced_cursor_open"),
    Patch("asyncpg", "pool.Pool", _acquire="traced_acquire"),
    Patch("asyncpg", "connection", connect="traced_connect"),
    Patch("asyncpg", connect="same_connect"),  # asyncpg.connect is connection.connect
)

# The wait of the last pool.acquire() in this task, for the next statement's span.
_pool_wait = contextvars.ContextVar("spyglass.asyncpg.pool_wait", default=None)
_RETURNING_ROWS = frozenset(("SELECT", "FETCH"))


class Asyncpg:
    """What the patches share: the statements' descriptions, servers and the recording."""

    def __init__(self, agent, module):
        self.driver = DriverInstrumentation(agent, TIMING, "postgresql", "postgresql",
                                            _describe)
        self._servers = {}  # (address, database) -> the connection attributes

    def record(self, parent, locate, target, args, kwargs, start, error, result, rows):
        """One call that has run: ``locate(target, args, kwargs)`` finds its connection,
        statement, parameters and batch size; ``rows(result)`` its row count (or None)."""
        end = time_ns()
        driver = self.driver
        try:
            connection, statement, parameters, batch = locate(target, args, kwargs)
            described, attributes = driver.described(statement, self.server(connection))
            key = described.key
            if batch is not None:
                attributes["db.operation.batch.size"] = batch
                key = (key, "batch")
            elif parameters and driver.capture_parameters:
                driver._add_parameters(attributes, parameters)
            wait = _pool_wait.get()
            if wait is not None:
                _pool_wait.set(None)
                attributes["spyglass.db.pool.wait_ms"] = wait / 1e6
            if error is None and rows is not None:
                _add_rows(attributes, rows(result))
            driver.finish(parent, described, start, end, attributes, error, key)
        except Exception:
            driver.calls.failed()

    def prepared(self, parent, connection, args, kwargs, start, end, error, _=None):
        """A ``prepare()``: the statement's description, named ``PREPARE <statement>``."""
        driver = self.driver
        try:
            statement = args[0] if args else kwargs.get("query")
            described, attributes = driver.described(statement, self.server(connection))
            attributes["db.operation.name"] = "PREPARE"
            name = f"PREPARE {described.name}"
            driver.calls.record(parent, name, start, end, attributes, error,
                                (described.key, "prepare"))
        except Exception:
            driver.calls.failed()

    def acquired(self, parent, pool, args, kwargs, start, end, error, _=None):
        """A pool's acquire: its wait is kept for the next statement; a span of its own
        only when it is slow or failed (a fast one between two identical queries would
        keep them from folding)."""
        calls = self.driver.calls
        try:
            _pool_wait.set(end - start)
            if error is not None or end - start >= calls.slow_ns:
                attributes = {"db.system": "postgresql", "db.operation.name": "acquire"}
                calls.record(parent, "acquire", start, end, attributes, error)
        except Exception:
            calls.failed()

    def server(self, connection):
        """The attributes of the server and database a connection is on, one dict for all
        connections to the same."""
        try:
            key = (connection._addr, connection._params.database)
        except AttributeError:
            key = None
        found = self._servers.get(key)
        if found is None:
            found = self.driver.connection_attributes(connection)
            if len(self._servers) < 64:
                self._servers[key] = found
        return found


setup = Asyncpg


# -- where each call's statement is: locate(target, args, kwargs) ------------------------
# -> (connection, statement text, parameters, batch size or None)

def _on_connection(connection, args, kwargs):
    query = args[0] if args else kwargs.get("query")
    return connection, query, args[1:], None


def _on_connection_batch(connection, args, kwargs):
    query = args[0] if args else kwargs.get("command", kwargs.get("query"))
    batch = args[1] if len(args) > 1 else kwargs.get("args")
    return connection, query, None, _length(batch)


def _prepared(statement, args, kwargs):
    return statement._connection, statement._query, args, None


def _prepared_batch(statement, args, kwargs):
    return statement._connection, statement._query, None, _length(args[0] if args else
                                                                 kwargs.get("args"))


def _cursor(cursor, args, kwargs):
    return cursor._connection, cursor._query, cursor._args, None


def _copy_out(connection, args, kwargs):
    return connection, f"COPY {_table(args, kwargs)} TO STDOUT", None, None


def _copy_in(connection, args, kwargs):
    return connection, f"COPY {_table(args, kwargs)} FROM STDIN", None, None


def _copy_query(connection, args, kwargs):
    query = args[0] if args else kwargs.get("query")
    return connection, f"COPY ({query}) TO STDOUT", args[1:], None


def _table(args, kwargs):
    table = args[0] if args else kwargs.get("table_name")
    schema = kwargs.get("schema_name")
    return f"{schema}.{table}" if schema else str(table)


# -- what each call's result says of its rows: rows(result) -> (returned?, count) or None --

def _list_rows(result):
    return True, len(result) if isinstance(result, list) else None


def _row_rows(result):
    return True, 0 if result is None else 1


def _status_rows(result):
    # asyncpg's command status: "INSERT 0 3", "UPDATE 2", "SELECT 5", "COPY 10", "CREATE TABLE"
    if type(result) is not str:
        return None
    command, _, count = result.rpartition(" ")
    if not count.isdigit():
        return None
    return command.split(" ", 1)[0] in _RETURNING_ROWS, int(count)


def _add_rows(attributes, found):
    if found is None:
        return
    returned, count = found
    if count is None:
        return
    attributes["db.response.returned_rows" if returned else "spyglass.db.rows_affected"] = count


# -- the patches' factories: make(original, asyncpg) ------------------------------------

def _traced(original, asyncpg, locate, rows=None, outer=False):
    """``outer``: the method runs public ones inside (copy_records_to_table prepares and
    queries to learn the table's columns); they are part of its span."""
    record = asyncpg.record

    async def traced(target, *args, **kwargs):
        scope = get_active_scope() or OUTSIDE_SCOPE
        if _inside_call.get():
            return await original(target, *args, **kwargs)
        token = _inside_call.set(True) if outer else None
        start = time_ns()
        try:
            result = await original(target, *args, **kwargs)
        except Exception as error:
            record(scope.span, locate, target, args, kwargs, start, error, None, rows)
            raise
        finally:
            if token is not None:
                _inside_call.reset(token)
        record(scope.span, locate, target, args, kwargs, start, None, result, rows)
        return result

    return traced


# One factory per patched method, named in PATCHES: where the call's statement is, what
# its result says of rows; ``outer`` for the methods that run public ones inside.

traced_execute = partial(_traced, locate=_on_connection, rows=_status_rows)
traced_fetch = partial(_traced, locate=_on_connection, rows=_list_rows)
traced_fetchrow = partial(_traced, locate=_on_connection, rows=_row_rows)
traced_fetchval = partial(_traced, locate=_on_connection)
traced_executemany = partial(_traced, locate=_on_connection_batch)
traced_fetchmany = partial(_traced, locate=_on_connection_batch, rows=_list_rows)
traced_prepared_fetch = partial(_traced, locate=_prepared, rows=_list_rows)
traced_prepared_fetchrow = partial(_traced, locate=_prepared, rows=_row_rows)
traced_prepared_fetchval = partial(_traced, locate=_prepared)
traced_prepared_executemany = partial(_traced, locate=_prepared_batch)
traced_prepared_fetchmany = partial(_traced, locate=_prepared_batch, rows=_list_rows)
traced_cursor_fetch = partial(_traced, locate=_cursor, rows=_list_rows)
traced_cursor_open = partial(_traced, locate=_cursor)
traced_copy_out = partial(_traced, locate=_copy_out, rows=_status_rows, outer=True)
traced_copy_in = partial(_traced, locate=_copy_in, rows=_status_rows, outer=True)
traced_copy_query = partial(_traced, locate=_copy_query, rows=_status_rows, outer=True)


def traced_prepare(prepare, asyncpg):
    return timed(prepare, asyncpg.prepared, None, holds=False)


def traced_acquire(acquire, asyncpg):
    return timed(acquire, asyncpg.acquired, None, holds=False)


def quiet_reset(reset, asyncpg):
    async def untraced(connection, *args, **kwargs):
        token = _inside_call.set(True)
        try:
            return await reset(connection, *args, **kwargs)
        finally:
            _inside_call.reset(token)

    return untraced


def traced_connect(connect, asyncpg):
    return asyncpg.driver.wrap_connect(connect)


def same_connect(connect, asyncpg):
    import asyncpg as module

    return alias(module.connection.connect, connect)


def _describe(connection):
    address = connection._addr
    found = {"db.namespace": connection._params.database}
    if isinstance(address, tuple):  # (host, port); a str is a Unix socket's path
        found["server.address"] = address[0]
        found["server.port"] = address[1]
    return found

