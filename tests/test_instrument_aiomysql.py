"""aiomysql against the real MariaDB, end to end under AUTOWRAPT_BOOTSTRAP with a real OTLP
receiver: its coroutine cursors and connections are traced in place (the generic DB-API
path cannot await), literals never leave, and the app sees what it sees without."""
import pytest

from support.calls import CLIENT_KIND, by_name, run_traced
from support.processes import run_python
from support.services import mysql_params

pytest.importorskip("aiomysql")

TABLE = "libs_data_aiomysql"

WORKLOAD = """
import asyncio, inspect, warnings
import aiomysql, pymysql

warnings.simplefilter("ignore")  # MariaDB's notes (DROP TABLE IF EXISTS) as warnings

async def work():
    conn = await aiomysql.connect(host={host!r}, port={port}, user={user!r},
                                  password={password!r}, db="test")
    async with conn.cursor() as cur:
        await cur.execute("DROP TABLE IF EXISTS {table}")
        await cur.execute("CREATE TABLE {table} (id int, owner varchar(40))")
        print(await cur.executemany("INSERT INTO {table} VALUES (%s, %s)",
                                    [(1, "mallory-amy"), (2, "trent-amy")]))
        print(await cur.executemany("UPDATE {table} SET id = %s WHERE id = %s",
                                    [(3, 1), (4, 2)]))
        print(await cur.execute("SELECT owner FROM {table} WHERE owner <> 'secret-amy' "
                                "ORDER BY id"), await cur.fetchall(), cur.rowcount)
        await conn.commit()
        try:
            await cur.execute("SELECT nope FROM {table}")
        except pymysql.err.OperationalError as error:
            print("raised", type(error).__name__, error.args[0])
    async with conn.cursor(aiomysql.DictCursor) as cur:
        await cur.execute("SELECT id FROM {table} WHERE id = %s", (3,))
        print(await cur.fetchall(), type(cur).__name__, isinstance(cur, aiomysql.Cursor))
        await cur.execute("DROP TABLE {table}")
    await conn.rollback()
    print(inspect.iscoroutinefunction(aiomysql.Cursor.execute),
          str(inspect.signature(aiomysql.Cursor.execute)))
    conn.close()

asyncio.run(work())
"""


@pytest.fixture
def params():
    return mysql_params()


def test_cursor_calls_are_client_spans_and_the_app_sees_what_it_sees_without(receiver,
                                                                            params):
    def workload(table):
        return WORKLOAD.format(table=table, **params)

    plain = run_python(workload(TABLE + "_plain")).stdout
    spans, traced = run_traced(receiver, workload(TABLE), expect_spans=11)
    assert traced == plain
    calls = [span for span in spans if span["kind"] == CLIENT_KIND]
    assert [s["name"] for s in calls] == [
        "connect", f"DROP TABLE {TABLE}", f"CREATE TABLE {TABLE}", f"INSERT {TABLE}",
        f"UPDATE {TABLE}", f"SELECT {TABLE}", "COMMIT", f"SELECT {TABLE}", f"SELECT {TABLE}",
        f"DROP TABLE {TABLE}", "ROLLBACK"]
    for span in calls:
        attrs = span["attrs"]
        assert attrs["db.system"] == "mysql" and attrs["db.namespace"] == "test"
        assert attrs["server.address"] == params["host"]
        assert attrs["server.port"] == params["port"]
    names = by_name(calls)
    # executemany: one span each, the executes it makes itself inside it
    assert names[f"INSERT {TABLE}"][0]["attrs"]["db.operation.batch.size"] == 2
    assert names[f"UPDATE {TABLE}"][0]["attrs"]["db.operation.batch.size"] == 2
    assert names[f"UPDATE {TABLE}"][0]["attrs"]["spyglass.db.rows_affected"] == 2
    select = names[f"SELECT {TABLE}"][0]["attrs"]
    assert select["db.query.text"] == f"SELECT owner FROM {TABLE} WHERE owner <> ? ORDER BY id"
    assert select["db.response.returned_rows"] == 2
    assert names[f"SELECT {TABLE}"][1]["status"]["code"] == 2
    text = receiver.raw_text()
    assert "secret-amy" not in text and "mallory-amy" not in text
