"""SQLAlchemy against the real PostgreSQL, end to end under AUTOWRAPT_BOOTSTRAP with a real
OTLP receiver: one span per statement, the driver's, carrying the engine's naming (the
dialect, db.namespace, the pool's wait); an ORM N+1 loop folds into one span; a driver
spyglass does not instrument gets its spans from SQLAlchemy; asyncio engines on asyncpg
too; and uninstall takes the listeners out."""
import pytest

from support.calls import CLIENT_KIND, by_name, run_traced
from support.processes import run_python
from support.servers import histogram_count
from support.services import postgres_dsn

pytest.importorskip("sqlalchemy")

TABLES = "libs_data_sa"

ORM = """
from sqlalchemy import ForeignKey, create_engine, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

class Base(DeclarativeBase):
    pass

class Author(Base):
    __tablename__ = "{tables}_author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    books = relationship("Book")

class Book(Base):
    __tablename__ = "{tables}_book"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("{tables}_author.id"))
    title: Mapped[str]

engine = create_engine("postgresql+{driver}://{user}@{host}:{port}/test")
Base.metadata.drop_all(engine)
Base.metadata.create_all(engine)
with Session(engine) as session:
    session.add_all([Author(id=i, name=f"author-secret-{{i}}",
                            books=[Book(title=f"title-secret-{{i}}")]) for i in range(5)])
    session.commit()
with Session(engine) as session:
    authors = session.scalars(select(Author).order_by(Author.id)).all()
    print([len(author.books) for author in authors])  # an N+1 loop of lazy loads
    print(session.execute(text("SELECT count(*) FROM {tables}_book WHERE title <> 'x-secret'"))
          .scalar_one(), type(authors[0]).__name__)
    try:
        session.execute(text("SELECT no_such_column FROM {tables}_book"))
    except Exception as error:
        print("raised", type(error).__name__, type(error.orig).__name__)
Base.metadata.drop_all(engine)
"""


@pytest.fixture
def dsn():
    return postgres_dsn()


def orm(dsn, driver, tables=TABLES):
    return ORM.format(tables=tables, driver=driver, user=dsn["user"], host=dsn["host"],
                      port=dsn["port"])


def statements(calls, fragment):
    return [s for s in calls if fragment in s["attrs"].get("db.query.text", "")]


@pytest.mark.parametrize("driver", ["psycopg2", "pg8000"])
def test_one_span_per_statement_with_the_engines_naming_and_n_plus_1_folded(
        receiver, dsn, driver):
    """psycopg2: the driver's spans, annotated. pg8000 (not named in dbapi2_modules, so not
    instrumented): SQLAlchemy's own spans, alike."""
    pytest.importorskip(driver)
    plain = run_python(orm(dsn, driver, TABLES + "_plain")).stdout
    spans, traced = run_traced(receiver, orm(dsn, driver), expect_spans=10)
    assert traced == plain
    assert traced.splitlines()[0] == "[1, 1, 1, 1, 1]"
    calls = [s for s in spans if s["kind"] == CLIENT_KIND]
    lazy = statements(calls, f"= {TABLES}_book.author_id")
    assert len(lazy) == 1 and lazy[0]["attrs"]["spyglass.count"] == 5  # folded
    counted = statements(calls, "SELECT count(*)")
    assert len(counted) == 1  # one span, not the driver's and another
    attrs = counted[0]["attrs"]
    assert attrs["spyglass.db.dialect"] == f"postgresql+{driver}"
    assert attrs["db.system"] == "postgresql" and attrs["db.namespace"] == "test"
    assert attrs["db.query.text"] == f"SELECT count(*) FROM {TABLES}_book WHERE title <> ?"
    assert attrs["server.address"] == dsn["host"] and attrs["server.port"] == dsn["port"]
    engine_spans = [s for s in calls if "spyglass.db.dialect" in s["attrs"]]
    assert any("spyglass.db.pool.wait_ms" in s["attrs"] for s in engine_spans)
    failed, = statements(calls, "no_such_column")
    assert failed["status"]["code"] == 2
    text = receiver.raw_text()
    assert "author-secret" not in text and "title-secret" not in text and "x-secret" not in text


def test_a_driver_named_in_dbapi2_modules_makes_the_span_not_sqlalchemy(receiver, dsn):
    pytest.importorskip("pg8000")
    spans, _ = run_traced(receiver, orm(dsn, "pg8000"), expect_spans=10,
                          SPYGLASS_DBAPI2_MODULES="pg8000")
    calls = [s for s in spans if s["kind"] == CLIENT_KIND]
    assert "connect" in {s["name"] for s in calls}  # the driver's own instrumentation
    counted = statements(calls, "SELECT count(*)")
    assert len(counted) == 1 and counted[0]["attrs"]["spyglass.db.dialect"] == "postgresql+pg8000"


def test_asyncio_engine_on_asyncpg(receiver, dsn):
    pytest.importorskip("asyncpg")
    spans, stdout = run_traced(receiver, f"""
        import asyncio
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        async def work():
            engine = create_async_engine(
                "postgresql+asyncpg://{dsn['user']}@{dsn['host']}:{dsn['port']}/test")
            async with engine.connect() as conn:
                for i in range(3):
                    result = await conn.execute(text("SELECT CAST(:n AS int) WHERE 'a' <> 'secret-sa'"),
                                                {{"n": i}})
                    print(result.scalar_one())
            await engine.dispose()

        asyncio.run(work())
    """, expect_spans=5)
    assert stdout.split() == ["0", "1", "2"]
    calls = [s for s in spans if s["kind"] == CLIENT_KIND]
    mine = statements(calls, "WHERE ? <> ?")
    names = by_name(mine)
    assert set(names) == {"SELECT", "PREPARE SELECT"}  # asyncpg's spans, one per call
    for span in mine:
        assert span["attrs"]["spyglass.db.dialect"] == "postgresql+asyncpg"
    assert names["SELECT"][0]["attrs"]["spyglass.count"] == 3
    assert "secret-sa" not in receiver.raw_text()


def test_uninstall_takes_the_listeners_out():
    result = run_python("""
        import sqlalchemy
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
        from sqlalchemy.engine.interfaces import Dialect
        import spyglass
        from spyglass import instrument
        spyglass.init(service_name="sa", endpoint="http://127.0.0.1:9", metrics_interval=0)
        engines = instrument._shared[("sqlalchemy", None)][1]
        listeners = list(engines.listeners)
        print(len(listeners), Engine._has_events, Dialect._has_events)
        instrument.uninstall()
        print(any(event.contains(*listener) for listener in listeners),
              Engine._has_events, Dialect._has_events)
    """)
    assert result.stdout.split() == ["3", "True", "True", "False", "False", "False"]


def test_outside_any_trace_a_statement_is_counted_once(receiver):
    # The driver (sqlite3) records what SQLAlchemy has it run; SQLAlchemy records only what
    # an uninstrumented driver runs: each statement in the duration metric once.
    result = run_python("""
        import sqlalchemy
        engine = sqlalchemy.create_engine("sqlite://")
        with engine.connect() as connection:
            for _ in range(5):
                connection.execute(sqlalchemy.text("SELECT 1")).fetchall()
        print("done")
    """, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url)
    assert result.stdout.split() == ["done"], result.stderr
    assert receiver.wait_for(lambda r: histogram_count(
        r, "db.client.operation.duration", **{"db.system": "sqlite",
                                              "db.operation.name": "SELECT"}) >= 5)
    assert histogram_count(receiver, "db.client.operation.duration",
                           **{"db.system": "sqlite", "db.operation.name": "SELECT"}) == 5
