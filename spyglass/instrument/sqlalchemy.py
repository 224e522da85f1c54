"""SQLAlchemy (Core and ORM, sync and asyncio engines): engine-level naming on the span of
the driver underneath, never a second span over it.

The driver's own instrumentation (psycopg2, psycopg, PyMySQL, sqlite3, asyncpg, aiomysql,
a driver named in ``dbapi2_modules`` …) makes the statement's span; SQLAlchemy's event API
tells it, through a ``StatementNote`` set around the cursor's execute, what the engine
knows: ``db.namespace`` (the URL's database), ``spyglass.db.dialect``
(``postgresql+psycopg2``) and, on the first statement after a checkout, the time the
connection took to come out of the pool (``spyglass.db.pool.wait_ms``). A statement whose
driver spyglass does not instrument (the note comes back untaken) gets its span here,
obfuscated as the drivers' are, under ``timing.sqlalchemy``. ORM N+1 loops fold as any
repeated fast call does.

| patched | how |
|---|---|
| ``Engine._has_events`` | SQLAlchemy's own flag: set when listeners are added to the ``Engine`` class (``before_cursor_execute``, ``after_cursor_execute``), which its factory does |
| ``Dialect._has_events`` | the same for ``handle_error`` (a failed statement) |
| ``Pool.connect``, ``SingletonThreadPool.connect`` | the checkout's wait, for the next statement |

``teardown`` removes the listeners; uninstall puts the flags back.
"""
import contextvars

from ._calls import OUTSIDE_SCOPE, time_ns
from ._dbapi import DriverInstrumentation, StatementNote, statement_note
from ._patch import Patch, Supports
from ..trace.context import get_active_scope

SUPPORTS = Supports("SQLAlchemy", "1.4")
TIMING = "sqlalchemy"
PATCHES = (
    # The listeners go in with the flags SQLAlchemy sets for them, so that uninstall puts
    # those back (and teardown takes the listeners out).
    Patch("sqlalchemy", "engine.Engine", _has_events="listening_to_statements"),
    Patch("sqlalchemy", "engine.interfaces.Dialect", _has_events="listening_to_errors"),
    Patch("sqlalchemy", "pool.Pool", connect="timed_checkout"),
    Patch("sqlalchemy", "pool.SingletonThreadPool", connect="timed_checkout"),
)

STATEMENT_EVENTS = ("before_cursor_execute", "after_cursor_execute")
# SQLAlchemy's dialect name -> spyglass's SQL obfuscation rules
OBFUSCATION = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql",
               "sqlite": "sqlite"}
MAX_ENGINES = 64

# The wait of the last checkout in this context, for the next statement.
_checkout_wait = contextvars.ContextVar("spyglass.sqlalchemy.checkout_wait", default=None)


class EngineNote(StatementNote):
    """A statement SQLAlchemy is having the driver run: what to add to the driver's span,
    and what to make a span of when the driver does not."""

    __slots__ = ("parent", "engine", "statement", "start", "batch")


class Engines:
    """The listeners, and what they know of each engine (by its dialect object)."""

    def __init__(self, agent, module):
        self.agent = agent
        self._engines = {}  # id(dialect) -> (dialect, its attributes): the dialect kept alive
        self._drivers = {}  # obfuscation rules -> the DriverInstrumentation recording as them
        self.listeners = []  # (target, event, function), for teardown

    # -- the listeners ---------------------------------------------------------------------

    def before(self, conn, cursor, statement, parameters, context, executemany):
        scope = get_active_scope() or OUTSIDE_SCOPE
        try:
            engine = conn.engine
            attributes = dict(self.engine_attributes(engine.dialect, engine.url))
            wait = _checkout_wait.get()
            if wait is not None:
                _checkout_wait.set(None)
                attributes["spyglass.db.pool.wait_ms"] = wait / 1e6
            note = EngineNote(attributes)
            note.parent, note.engine, note.statement = scope.span, engine, statement
            note.batch = len(parameters) if executemany and hasattr(parameters, "__len__") else None
            note.start = time_ns()
            statement_note.set(note)
        except Exception:
            self.failed()

    def after(self, conn, cursor, statement, parameters, context, executemany):
        self.done(None)

    def error(self, exception_context):
        self.done(exception_context.original_exception)

    def done(self, error):
        note = statement_note.get()
        if note is None or not isinstance(note, EngineNote):
            return
        statement_note.set(None)
        if note.taken:
            return  # the driver's span has it all
        end = time_ns()
        try:  # an uninstrumented driver: the statement's span, from here
            dialect = note.engine.dialect
            driver = self.driver(OBFUSCATION.get(dialect.name, "generic"))
            described, attributes = driver.described(
                note.statement, {"db.system": dialect.name, **note.attributes})
            key = described.key
            if note.batch is not None:
                attributes["db.operation.batch.size"] = note.batch
                key = (key, "batch")
            driver.finish(note.parent, described, note.start, end, attributes, error, key)
        except Exception:
            self.failed()

    # -- what an engine is -----------------------------------------------------------------

    def engine_attributes(self, dialect, url):
        found = self._engines.get(id(dialect))
        if found is not None:
            return found[1]
        attributes = {"spyglass.db.dialect": f"{dialect.name}+{dialect.driver}"}
        if url.database:
            attributes["db.namespace"] = url.database
        if url.host:
            attributes["server.address"] = url.host
            if url.port:
                attributes["server.port"] = url.port
        if len(self._engines) >= MAX_ENGINES:
            self._engines.clear()
        self._engines[id(dialect)] = (dialect, attributes)
        return attributes

    def driver(self, rules):
        """The recording of statements obfuscated by ``rules`` (a dialect of redact.sql)."""
        found = self._drivers.get(rules)
        if found is None:
            found = self._drivers[rules] = DriverInstrumentation(self.agent, TIMING, rules,
                                                                 rules)
        return found

    def failed(self):
        self.driver("generic").calls.failed()

    def listen(self, target, event_name, function):
        from sqlalchemy import event

        event.listen(target, event_name, function)
        self.listeners.append((target, event_name, function))


setup = Engines


def teardown(engines):
    from sqlalchemy import event

    while engines.listeners:
        target, event_name, function = engines.listeners.pop()
        if event.contains(target, event_name, function):
            event.remove(target, event_name, function)


# -- the patches' factories: make(original, engines) ------------------------------------

def listening_to_statements(flag, engines):
    from sqlalchemy.engine import Engine

    engines.listen(Engine, "before_cursor_execute", engines.before)
    engines.listen(Engine, "after_cursor_execute", engines.after)
    return True


def listening_to_errors(flag, engines):
    from sqlalchemy.engine import Engine

    engines.listen(Engine, "handle_error", engines.error)
    return True


def timed_checkout(connect, engines):
    def checkout(pool, *args, **kwargs):
        start = time_ns()
        connection = connect(pool, *args, **kwargs)
        _checkout_wait.set(time_ns() - start)
        return connection

    return checkout
