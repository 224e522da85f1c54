"""The generic PEP 249 hook (``dbapi2_modules``), in process, on a real driver it does not
know (the sqlite3 driver's own connect, under a module of another name): the connection
``with`` gives the app is still traced, and iteration and results are the driver's."""
import sqlite3
import types

import pytest

from support.calls import agent, request_span


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
