"""What every PEP 249 instrumentation shares: the span of a statement, a commit, a connect.

Drivers are instrumented in one of two ways, both keeping the app's objects the driver's:

* C drivers (sqlite3, psycopg2) through their own factory hooks: the connection and cursor
  classes are replaced by *subclasses* made on demand (``subclass``) of whatever class the
  app asked for, so ``isinstance`` and C-level type checks hold and a user's
  ``factory``/``cursor_factory`` keeps working.
* Pure-Python drivers (PyMySQL, mysqlclient's cursors, psycopg 3) by replacing methods on
  the driver's own classes, declared as patches made by the ``traced_*`` factories at the
  end of this module: ``type(cursor)`` is exactly what it was.

Either way a wrapped method is timed whether or not a span is active: outside any trace
its parent is ``OUTSIDE`` (see ``_calls``), where a fast call ends at its metric.
"""
import contextvars

from ._calls import OUTSIDE, OUTSIDE_SCOPE, SQL, CallRecorder, db_call_metric, time_ns
from ._patch import like
from ..trace.context import get_active_scope
from ..trace.span import RootSpan
from ..redact.sql import normalize

# True while a traced executemany/callproc runs: the driver's own nested execute() calls
# (PyMySQL, mysqlclient loop over execute) are part of that span, not spans of their own.
_inside_call = contextvars.ContextVar("spyglass.dbapi.inside", default=False)


class StatementNote:
    """What a layer above the driver (SQLAlchemy) adds to the span of the statement it has
    the driver run: set in ``statement_note`` around that call, read by the driver's
    recording, which sets ``taken``; a note left untaken tells the layer above that the
    driver is not instrumented, and it records the statement itself. One span either way."""

    __slots__ = ("attributes", "taken")

    def __init__(self, attributes):
        self.attributes = attributes
        self.taken = False


statement_note = contextvars.ContextVar("spyglass.dbapi.note", default=None)

MAX_PARAMETER_LENGTH = 256
STATEMENT_CACHE_SIZE = 1024
_STATEMENT_KEYWORDS = ("query", "sql", "operation", "statement")
_PARAMETER_KEYWORDS = ("vars", "args", "params", "parameters", "seq_of_parameters",
                       "vars_list", "argslist")


class DriverInstrumentation:
    """One driver's instrumentation state: its calls and how to describe a connection."""

    def __init__(self, agent, timing_key, system, dialect, describe=None):
        self.calls = CallRecorder(agent, timing_key, SQL)
        self.system = system
        self.dialect = dialect
        self.capture_parameters = agent.config.capture_sql_parameters
        self._describe = describe  # connection -> {"db.namespace": …, "server.address": …}
        self._statements = {}  # statement text -> its Statement
        self._shared = {}  # connection attributes -> one dict holding them (see below)
        self._record_db_call = db_call_metric()
        self._fold = self.calls.compress  # compress_repeated_calls, read on every query

    @classmethod
    def setup_for(cls, timing_key, system, dialect, describe=None):
        """The ``setup(agent, module)`` of a driver's instrumentation."""
        return lambda agent, module: cls(agent, timing_key, system, dialect, describe)

    # -- the connection's part of every span ----------------------------------------------

    def connection_attributes(self, connection):
        """``db.system``, ``db.namespace``, ``server.*`` of a connection, worked out once."""
        try:
            return connection._spyglass_db
        except AttributeError:
            pass
        attributes = {"db.system": self.system}
        if self._describe is not None and connection is not None:
            try:
                found = self._describe(connection)
            except Exception:
                found = {}
            attributes.update((key, value) for key, value in found.items()
                              if value is not None and value != "")
        attributes = self.shared(attributes)
        try:
            connection._spyglass_db = attributes
        except Exception:  # a connection class with __slots__: described each time
            pass
        return attributes

    def shared(self, attributes):
        """One dict for all connections described alike (the connections of a pool), so
        that a statement's attributes merged with them are cached once, not per
        connection. Never changed after: it is shared."""
        try:
            key = tuple(attributes.items())
            hash(key)
        except TypeError:
            return attributes
        shared = self._shared
        if len(shared) >= STATEMENT_CACHE_SIZE:
            shared.clear()
        return shared.setdefault(key, attributes)

    # -- spans ----------------------------------------------------------------------------

    def statement(self, parent, cursor, args, kwargs, start_ns, end_ns, error, batch):
        """Record one execute/executemany/executescript that has run."""
        # The hot path of every traced query: what can be worked out once is cached
        # (the statement's description, and its attributes merged with the connection's).
        try:
            statement = args[0] if args else _argument(args, kwargs, 0, _STATEMENT_KEYWORDS)
            described = self._statements.get(statement) if type(statement) is str else None
            if described is None:
                described = self._describe_statement(statement, cursor)
            elif parent is OUTSIDE and error is None and end_ns - start_ns < self.calls.slow_ns:
                # Fast, outside any trace: its metric is all there is to it (the cheap path
                # of scripts and workers' loops).
                if self._record_db_call is not None:
                    self._record_db_call(self.system, described.operation,
                                         (end_ns - start_ns) / 1e9)
                return
            if error is None and not batch and end_ns - start_ns < self.calls.slow_ns:
                self.fast_statement(parent, cursor, args, kwargs, described, start_ns, end_ns)
                return
            attributes = self._attributes(described, cursor, statement_note.get())
            key = described.key
            if batch:
                size = _length(_argument(args, kwargs, 1, _PARAMETER_KEYWORDS))
                if size is not None:
                    attributes["db.operation.batch.size"] = size
                key = (key, "batch")
            elif self.capture_parameters:
                self._add_parameters_of(attributes, args, kwargs)
            if error is None:
                _add_rows(attributes, cursor, _rowcount(cursor))
            self.calls.record(parent, described.name, start_ns, end_ns, attributes, error, key)
            if self._record_db_call is not None:
                self._record_db_call(self.system, described.operation, (end_ns - start_ns) / 1e9)
        except Exception:
            self.calls.failed()

    def fast_statement(self, parent, cursor, args, kwargs, described, start_ns, end_ns):
        """Record a statement (not a batch) that ran fast and without error: what
        ``CallRecorder.record`` does with a fast call, in one step, its span's attributes
        made only for a span of its own (not for a call an unsampled trace only counts,
        nor for one folded into the identical call before it: an N+1 loop's)."""
        try:
            duration = end_ns - start_ns
            local = parent if parent.__class__ is RootSpan else parent.local  # no property
            note = statement_note.get()
            if note is not None:  # run by a layer above (SQLAlchemy): recorded here
                note.taken = True
            if not local.sampled:
                local.count_call(SQL, duration)
            elif not (self._fold and local.fold_fast_call(parent.span_id, SQL, duration, end_ns,
                                                          described.key)):
                attributes = self._attributes(described, cursor, note)
                if self.capture_parameters:
                    self._add_parameters_of(attributes, args, kwargs)
                try:  # _rowcount(cursor), written out: no call for the -1 of "unknown"
                    rowcount = cursor.rowcount
                except Exception:
                    rowcount = -1
                if rowcount.__class__ is int and 0 <= rowcount < 1 << 63:
                    _add_rows(attributes, cursor, rowcount)
                calls = self.calls
                local.add_fast_call(parent, described.name, calls.kind, start_ns, end_ns,
                                    attributes, SQL, described.key if self._fold else None,
                                    calls.min_ns)
            if self._record_db_call is not None:
                self._record_db_call(self.system, described.operation, duration / 1e9)
        except Exception:
            self.calls.failed()

    def _attributes(self, described, cursor, note):
        """A statement's span's attributes: its own, its connection's, its category and what
        ``note`` (a layer above's) adds, in a fresh dict."""
        connection = cursor.connection
        try:
            base = connection._spyglass_db
        except AttributeError:
            base = self.connection_attributes(connection)
        merged_for, merged = described.merged
        if merged_for is not base:
            merged = {**base, **described.attributes, "spyglass.category": SQL}
            described.merged = (base, merged)  # one store: safe across threads
        attributes = merged.copy()
        if note is not None:
            note.taken = True
            attributes.update(note.attributes)
        return attributes

    def described(self, statement, connection_attributes, cursor=None):
        """(``Statement``, its span's attributes: a fresh dict) of a statement's text sent on
        a connection described by ``connection_attributes`` (a dict made by ``shared``), for
        drivers without a PEP 249 cursor (asyncpg). As ``statement`` does, inline."""
        described = self._statements.get(statement) if type(statement) is str else None
        if described is None:
            described = self._describe_statement(statement, cursor)
        merged_for, merged = described.merged
        if merged_for is not connection_attributes:
            merged = {**connection_attributes, **described.attributes, "spyglass.category": SQL}
            described.merged = (connection_attributes, merged)
        attributes = merged.copy()
        note = statement_note.get()
        if note is not None:
            note.taken = True
            attributes.update(note.attributes)
        return described, attributes

    def finish(self, parent, described, start_ns, end_ns, attributes, error, key=None):
        """Record a statement described by ``described`` (its span and metric), for drivers
        without a PEP 249 cursor; ``key`` folds repeats (default: the statement's)."""
        self.calls.record(parent, described.name, start_ns, end_ns, attributes, error,
                          described.key if key is None else key)
        if self._record_db_call is not None:
            self._record_db_call(self.system, described.operation, (end_ns - start_ns) / 1e9)

    def _describe_statement(self, statement, cursor):
        """What a statement's text makes (a ``Statement``), cached by text."""
        text = statement
        if statement is not None and not isinstance(statement, (str, bytes)):
            text = _composed_text(statement, cursor)
        normalized = normalize(text if text is not None else "", self.dialect)
        attributes = {}  # spyglass.category: set by CallRecorder.record
        if normalized.operation:
            attributes["db.operation.name"] = normalized.operation
        attributes["db.query.text"] = normalized.text
        if normalized.signature:
            attributes["db.query.summary"] = normalized.signature
        attributes["spyglass.statement.hash"] = normalized.hash
        described = Statement(normalized.signature or self.system, attributes,
                              normalized.operation, normalized.hash)
        if type(statement) is str:
            statements = self._statements
            if len(statements) >= STATEMENT_CACHE_SIZE:
                statements.clear()  # a churn of distinct statements: start over, cheaply
            statements[statement] = described
        return described

    def operation(self, parent, connection, operation, start_ns, end_ns, error, extra=None):
        """Record a call without a statement: connect, commit, rollback, callproc."""
        try:
            attributes = dict(self.connection_attributes(connection))
            attributes["db.operation.name"] = operation
            name = operation
            if extra:
                attributes.update(extra)
                procedure = extra.get("db.stored_procedure.name")
                if procedure:
                    name = f"{operation} {procedure}"
            self.calls.record(parent, name, start_ns, end_ns, attributes, error, name)
            if self._record_db_call is not None:
                self._record_db_call(self.system, operation, (end_ns - start_ns) / 1e9)
        except Exception:
            self.calls.failed()

    def _add_parameters_of(self, attributes, args, kwargs):
        """The parameters of an execute called with ``args`` and ``kwargs``, if any."""
        parameters = _argument(args, kwargs, 1, _PARAMETER_KEYWORDS)
        if parameters:
            self._add_parameters(attributes, parameters)

    def _add_parameters(self, attributes, parameters):
        scrubber = self.calls.agent.scrubber
        if isinstance(parameters, dict):
            items = parameters.items()
        elif isinstance(parameters, (list, tuple)):
            items = enumerate(parameters)
        else:
            return
        for key, value in items:
            text = "[Filtered]" if scrubber.is_secret_key(key) else scrubber.text(_short_repr(value))
            attributes[f"db.query.parameter.{key}"] = text

    # -- wrappers -------------------------------------------------------------------------

    def wrap_statement(self, method, batch=False):
        """A traced replacement for a cursor's execute-like ``method`` (a coroutine function
        for an asyncio driver's); ``batch``: executemany's, whose nested executes (the
        driver's own) are part of its span."""
        record = self.statement
        if batch or _is_coroutine_function(method):
            return timed(method, record, batch, holds=batch)

        # timed(), written out for the one call that runs on every query (a synchronous
        # driver's execute: benchmarks/bench_sqlite.py), without its begin/end calls and the
        # token only a batch holds (tests/test_written_out_copies.py holds the two equal).
        # And statement()'s first branches written out too: a fast statement seen before
        # ends at its metric outside any trace (a script's, a worker's loop), and goes
        # straight to fast_statement() inside one (benchmarks/bench_instructions.py counts
        # both; tests/test_written_out_copies.py holds them equal to statement()).
        statements, slow_ns, system = self._statements, self.calls.slow_ns, self.system
        metric, fast = self._record_db_call, self.fast_statement

        def traced(cursor, *args, **kwargs):
            scope = get_active_scope()
            if _inside_call.get():
                return method(cursor, *args, **kwargs)
            start = time_ns()
            try:
                if kwargs or len(args) != 1:
                    result = method(cursor, *args, **kwargs)
                else:  # the statement alone, the commonest: passed without repacking args
                    result = method(cursor, args[0])
            except Exception as error:
                record((scope or OUTSIDE_SCOPE).span, cursor, args, kwargs, start, time_ns(),
                       error, False)
                raise
            end = time_ns()
            if args and type(args[0]) is str:
                described = statements.get(args[0])
                if described is not None and end - start < slow_ns:
                    if scope is not None:
                        fast(scope.span, cursor, args, kwargs, described, start, end)
                    else:
                        note = statement_note.get()
                        if note is not None:  # SQLAlchemy's statement: counted here, once
                            note.taken = True
                        if metric is not None:
                            metric(system, described.operation, (end - start) / 1e9)
                    return result
            record((scope or OUTSIDE_SCOPE).span, cursor, args, kwargs, start, end, None, False)
            return result

        return like(traced, method)

    def wrap_operation(self, method, operation, connection_of=None):
        """A traced replacement for a method without a statement (commit, rollback,
        callproc; a coroutine function for an asyncio driver's). ``connection_of(self
        object)`` finds the connection (default: itself)."""
        return timed(method, self._called, (operation, connection_of))

    def _called(self, parent, target, args, kwargs, start_ns, end_ns, error, how):
        """Record a ``wrap_operation`` method called on ``target``; ``how``: (operation,
        connection_of)."""
        operation, connection_of = how
        try:
            connection = connection_of(target) if connection_of is not None else target
            extra = _procedure(args, kwargs) if operation == "CALL" else None
        except Exception:
            self.calls.failed()
            return
        self.operation(parent, connection, operation, start_ns, end_ns, error, extra)

    def _wrap_connect_async(self, connect):
        """``wrap_connect`` for a coroutine connect: what the driver queries to connect is
        part of it."""
        record = self.operation

        async def traced_connect(*args, **kwargs):
            scope = get_active_scope() or OUTSIDE_SCOPE
            token = _inside_call.set(True)
            start = time_ns()
            try:
                connection = await connect(*args, **kwargs)
            except Exception as error:
                _inside_call.reset(token)
                record(scope.span, None, "connect", start, time_ns(), error)
                raise
            end = time_ns()
            _inside_call.reset(token)
            record(scope.span, connection, "connect", start, end, None)
            return connection

        return like(traced_connect, connect)

    def wrap_connect(self, connect, prepare=None):
        """A traced ``connect``; ``prepare(args, kwargs)`` may change its arguments first
        (to ask for traced classes) and returns them. A coroutine function's is one too."""
        if _is_coroutine_function(connect):
            return self._wrap_connect_async(connect)
        record = self.operation
        calls = self.calls

        def traced_connect(*args, **kwargs):
            if prepare is not None:
                try:
                    args, kwargs = prepare(args, kwargs)
                except Exception:
                    calls.failed()
            scope = get_active_scope() or OUTSIDE_SCOPE
            start = time_ns()
            try:
                connection = connect(*args, **kwargs)
            except Exception as error:
                record(scope.span, None, "connect", start, time_ns(), error)
                raise
            record(scope.span, connection, "connect", start, time_ns(), None)
            return connection

        return like(traced_connect, connect)


class Statement:
    """What a statement's text makes, worked out once: the span's name, the statement's
    attributes, its operation and the key that folds repeats of it; ``merged``, the last
    connection attributes seen with it and both merged, as one (connection's, merged)."""

    __slots__ = ("name", "attributes", "operation", "key", "merged")

    def __init__(self, name, attributes, operation, key):
        self.name = name
        self.attributes = attributes
        self.operation = operation
        self.key = key
        self.merged = (None, None)


class ClassCache:
    """Traced subclasses made on demand, one per class the app asks for."""

    def __init__(self, make):
        self._make = make
        self._made = {}
        self._traced = set()

    def __call__(self, cls):
        """The traced subclass of ``cls``; ``cls`` itself if it is one already or cannot be
        subclassed (a factory function rather than a class)."""
        made = self._made.get(cls)
        if made is not None:
            return made
        if cls in self._traced or not isinstance(cls, type):
            return cls
        try:
            made = self._make(cls)
        except Exception:  # a final class: leave it untraced rather than break the app
            return cls
        self._traced.add(made)
        self._made[cls] = made
        return made

    def is_traced(self, cls):
        return cls in self._traced


def subclass(base, methods, keep_dict=False):
    """A subclass of ``base`` that looks like it (same name, module, doc) with ``methods``
    (name -> function) added. ``__slots__ = ()`` keeps instances exactly as the base's
    (no new ``__dict__``) unless ``keep_dict``."""
    namespace = dict(methods, __module__=base.__module__, __doc__=base.__doc__)
    if not keep_dict:
        namespace["__slots__"] = ()
    cls = type(base.__name__, (base,), namespace)
    cls.__qualname__ = base.__qualname__
    return cls


# -- the factories of the drivers' declared patches: make(original, driver); a coroutine
# method's replacement is one too ------------------------------------------------------------

def traced_execute(execute, driver):
    return driver.wrap_statement(execute)


def traced_executemany(executemany, driver):
    return driver.wrap_statement(executemany, batch=True)


def traced_callproc(callproc, driver):
    return driver.wrap_operation(callproc, "CALL", connection_of)


def traced_commit(commit, driver):
    return driver.wrap_operation(commit, "COMMIT")


def traced_rollback(rollback, driver):
    return driver.wrap_operation(rollback, "ROLLBACK")


def traced_connect_method(connect, driver):
    """A connection's own method that opens (and reopens) its socket."""
    return driver.wrap_operation(connect, "connect")


def timed(method, record, detail=None, holds=True, describe=None):
    """A traced replacement for a client library's ``method`` (a coroutine function for a
    coroutine function): outside a call of a database driver traced already, it is timed
    (outside any trace too, under ``OUTSIDE``: see ``_calls``) and ``record(parent span, self object, args, kwargs, start_ns,
    end_ns, error, detail)`` is called after it. ``holds``: what the driver runs inside it
    (its own executes) is part of its span. ``describe(self object, args)``, when given,
    makes ``detail`` before each call (a pipeline's commands, which the call empties). The
    two forms differ only by their ``await``."""

    def begin(target, args):
        scope = get_active_scope() or OUTSIDE_SCOPE  # outside any trace: see _calls
        if _inside_call.get():
            return None
        found = detail if describe is None else describe(target, args)
        return scope.span, _inside_call.set(True) if holds else None, time_ns(), found

    def end(began, target, args, kwargs, error):
        end_ns = time_ns()
        parent, token, start_ns, found = began
        if token is not None:
            _inside_call.reset(token)
        record(parent, target, args, kwargs, start_ns, end_ns, error, found)

    if _is_coroutine_function(method):
        async def traced(target, *args, **kwargs):
            began = begin(target, args)
            if began is None:
                return await method(target, *args, **kwargs)
            try:
                result = await method(target, *args, **kwargs)
            except Exception as error:
                end(began, target, args, kwargs, error)
                raise
            end(began, target, args, kwargs, None)
            return result
    else:
        def traced(target, *args, **kwargs):
            began = begin(target, args)
            if began is None:
                return method(target, *args, **kwargs)
            try:
                result = method(target, *args, **kwargs)
            except Exception as error:
                end(began, target, args, kwargs, error)
                raise
            end(began, target, args, kwargs, None)
            return result

    return like(traced, method)


def _is_coroutine_function(function):
    # inspect.iscoroutinefunction's test, without importing inspect for it
    return bool(getattr(getattr(function, "__code__", None), "co_flags", 0) & 0x80)


def describe_libpq(connection):
    """``db.namespace`` and ``server.*`` of a PostgreSQL connection (psycopg 2 or 3: both
    have libpq's ``info``)."""
    info = connection.info
    host = info.host
    found = {"db.namespace": info.dbname}
    if host and not host.startswith("/"):  # a Unix socket's directory is no address
        found["server.address"] = host
        found["server.port"] = info.port
    return found


def describe_mysql(connection):
    """``db.namespace`` and ``server.*`` of a PyMySQL or aiomysql connection."""
    name = connection.db
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    found = {"db.namespace": name}
    if not getattr(connection, "unix_socket", None):
        found["server.address"] = connection.host
        found["server.port"] = connection.port
    return found


def connection_of(cursor):
    """A cursor's connection, or None (then the span has only ``db.system``)."""
    try:
        return cursor.connection
    except Exception:
        return None


def _argument(args, kwargs, position, keywords):
    if len(args) > position:
        return args[position]
    for keyword in keywords:
        if keyword in kwargs:
            return kwargs[keyword]
    return None


def _procedure(args, kwargs):
    procedure = _argument(args, kwargs, 0, ("procname", "name"))
    return {"db.stored_procedure.name": str(procedure)} if procedure else None


def _composed_text(statement, cursor):
    """psycopg's ``sql.Composed`` and the like, as the text sent (obfuscated after)."""
    as_string = getattr(statement, "as_string", None)
    if as_string is not None:
        try:
            return as_string(cursor)
        except Exception:
            pass
    return "?"  # unknown: never risk sending a repr full of values


def _length(value):
    try:
        return len(value)
    except Exception:
        return None


def _rowcount(cursor):
    """The rows a statement returned or changed, as its cursor says, or -1: unknown."""
    try:
        rowcount = cursor.rowcount
    except Exception:
        return -1
    return rowcount if rowcount.__class__ is int and 0 <= rowcount < 1 << 63 else -1


def _add_rows(attributes, cursor, rowcount):
    """``rowcount`` (if known) as the rows a statement returned, or changed."""
    if rowcount < 0:
        return
    try:
        returns_rows = cursor.description is not None
    except Exception:
        returns_rows = False
    if returns_rows:
        attributes["db.response.returned_rows"] = rowcount
    else:
        attributes["spyglass.db.rows_affected"] = rowcount


def _short_repr(value):
    try:
        text = value if isinstance(value, str) else repr(value)
    except Exception:
        return "<unrepresentable>"
    return text if len(text) <= MAX_PARAMETER_LENGTH else text[:MAX_PARAMETER_LENGTH] + "…"

