"""The generic PEP 249 hook (``dbapi2_modules``), in process, on a real driver it does not
know (the sqlite3 driver's own connect, under a module of another name): the connection
``with`` gives the app is still traced, and iteration and results are the driver's. And end
to end on pg8000, a pure-Python driver, against the real PostgreSQL."""
import sqlite3
import types

import pytest

from support.calls import CLIENT_KIND, agent, request_span, run_traced
from support.processes import run_python
from support.services import postgres_dsn


@pytest.fixture(scope="module")
def driver():
    from spyglass.instrument import GENERIC_DBAPI, install

    connect = getattr(sqlite3.connect, "__wrapped__", sqlite3.connect)  # the driver's own
    module = types.ModuleType("acme_sql")
    module.connect = connect
    assert install(agent(), module, GENERIC_DBAPI)
    return module


def test_the_connection_a_with_block_gives_stays_traced(driver, exported):
    with request_span():
        with driver.connect(":memory:") as conn:
            conn.cursor().execute("CREATE TABLE t (x)")
            conn.commit()
        cursor = conn.cursor()
        cursor.execute("INSERT INTO t VALUES (1)")
        assert [row for row in cursor.execute("SELECT x FROM t")] == [(1,)]
    names = [span.name for span in exported.calls()]
    assert names == ["connect", "CREATE TABLE t", "COMMIT", "INSERT t", "SELECT t"], names
    assert isinstance(conn, sqlite3.Connection) and isinstance(cursor, sqlite3.Cursor)


def test_pg8000_a_pure_python_driver_named_in_dbapi2_modules(receiver):
    """As AppEnlight's client did: a driver spyglass has no module for, named in the setting,
    is traced with its statements obfuscated and the server it is on."""
    pytest.importorskip("pg8000")
    dsn = postgres_dsn()
    program = f"""
        import pg8000
        conn = pg8000.connect(host={dsn['host']!r}, port={dsn['port']}, user={dsn['user']!r},
                              database="test")
        cursor = conn.cursor()
        cursor.execute("CREATE TEMP TABLE libs_data_pg8000 (owner text, pin int)")
        cursor.executemany("INSERT INTO libs_data_pg8000 VALUES (%s, %s)",
                           [("mallory-pg8000", 1), ("trent-pg8000", 2)])
        cursor.execute("SELECT owner FROM libs_data_pg8000 WHERE pin = 424242 OR owner = %s",
                       ("trent-pg8000",))
        print(cursor.fetchall(), isinstance(conn, pg8000.Connection),
              cursor.__class__.__name__, cursor.rowcount)
        conn.commit()
        try:
            cursor.execute("SELECT nope FROM libs_data_pg8000")
        except pg8000.DatabaseError as error:
            print("raised", type(error).__name__)
        conn.close()
    """
    plain = run_python(program).stdout
    spans, stdout = run_traced(receiver, program, expect_spans=7,
                               SPYGLASS_DBAPI2_MODULES="pg8000")
    assert stdout == plain
    assert stdout.split("\n")[:2] == ["(['trent-pg8000'],) True Cursor 1",
                                      "raised ProgrammingError"]
    calls = [s for s in spans if s["kind"] == CLIENT_KIND]
    assert [s["name"] for s in calls] == ["connect", "CREATE TABLE libs_data_pg8000",
                                          "INSERT libs_data_pg8000", "SELECT libs_data_pg8000",
                                          "COMMIT", "SELECT libs_data_pg8000"]
    for span in calls:
        assert span["attrs"]["db.system"] == "postgresql"
        assert span["attrs"]["db.namespace"] == "test"
        assert span["attrs"]["server.address"] == dsn["host"]
        assert span["attrs"]["server.port"] == dsn["port"]
    assert calls[2]["attrs"]["db.operation.batch.size"] == 2
    assert calls[3]["attrs"]["db.query.text"] == (
        "SELECT owner FROM libs_data_pg8000 WHERE pin = ? OR owner = %s")
    assert calls[5]["status"]["code"] == 2
    text = receiver.raw_text()
    assert "424242" not in text and "mallory-pg8000" not in text
