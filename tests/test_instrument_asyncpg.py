"""asyncpg against the real PostgreSQL, end to end: a fresh interpreter under
AUTOWRAPT_BOOTSTRAP exports to a real OTLP receiver. Every kind of call the app makes is a
CLIENT span with the statement obfuscated; what the app sees (results, types, exceptions)
is what it sees without the sensor; a pool's wait is on the next statement."""
import pytest

from support.calls import CLIENT_KIND, by_name, run_traced
from support.processes import run_python
from support.services import postgres_dsn

pytest.importorskip("asyncpg")

TABLE = "libs_data_asyncpg"

# Every kind of call, printing what the app gets back: run plain and traced, the output
# must be the same.
WORKLOAD = """
import asyncio, inspect, io
import asyncpg

async def work():
    conn = await asyncpg.connect(host={host!r}, port={port}, user={user!r}, database="test")
    await conn.execute("DROP TABLE IF EXISTS {table}")
    print(await conn.execute("CREATE TABLE {table} (id int, owner text)"))
    print(await conn.executemany("INSERT INTO {table} VALUES ($1, $2)",
                                 [(1, "mallory-apg"), (2, "trent-apg")]))
    rows = await conn.fetch("SELECT * FROM {table} WHERE owner <> 'secret-literal-apg' "
                            "ORDER BY id")
    print(rows, type(rows[0]).__name__, isinstance(rows[0], asyncpg.Record))
    print(await conn.fetchrow("SELECT owner FROM {table} WHERE id = $1", 2))
    print(await conn.fetchrow("SELECT owner FROM {table} WHERE id = $1", 99))
    print(await conn.fetchval("SELECT count(*) FROM {table} WHERE id > 0"))
    print(await conn.fetchmany("UPDATE {table} SET id = id WHERE id = $1 RETURNING id",
                               [(1,), (2,)]))
    statement = await conn.prepare("SELECT id FROM {table} WHERE id >= $1 ORDER BY id")
    print(type(statement).__name__, await statement.fetch(1), await statement.fetchval(2))
    async with conn.transaction():
        print([r["id"] async for r in conn.cursor("SELECT id FROM {table} ORDER BY id",
                                                  prefetch=1)])
        cursor = await conn.cursor("SELECT id FROM {table} ORDER BY id")
        print(await cursor.forward(1), await cursor.fetch(5))
    out = io.BytesIO()
    print(await conn.copy_from_table("{table}", output=out), len(out.getvalue()))
    print(await conn.copy_records_to_table("{table}", records=[(3, "peggy-apg")]))
    print(await conn.copy_from_query("SELECT * FROM {table} WHERE id = $1", 3,
                                     output=io.BytesIO()))
    try:
        await conn.fetch("SELECT no_such_column FROM {table}")
    except asyncpg.UndefinedColumnError as error:
        print("raised", type(error).__name__, error.sqlstate)
    print(isinstance(conn, asyncpg.Connection), type(conn).__module__,
          inspect.iscoroutinefunction(asyncpg.Connection.fetch),
          str(inspect.signature(asyncpg.Connection.fetch)))
    await conn.execute("DROP TABLE {table}")
    await conn.close()

asyncio.run(work())
"""


@pytest.fixture
def dsn():
    return postgres_dsn()


def workload(dsn, table=TABLE):
    return WORKLOAD.format(host=dsn["host"], port=dsn["port"], user=dsn["user"], table=table)


def test_every_call_is_a_client_span_and_the_app_sees_what_it_sees_without(receiver, dsn):
    plain = run_python(workload(dsn, TABLE + "_plain")).stdout
    spans, traced = run_traced(receiver, workload(dsn), expect_spans=19)
    assert traced == plain.replace(TABLE + "_plain", TABLE)
    calls = [span for span in spans if span["kind"] == CLIENT_KIND]
    names = by_name(calls)
    assert {"connect", f"DROP TABLE {TABLE}", f"CREATE TABLE {TABLE}", f"INSERT {TABLE}",
            f"SELECT {TABLE}", f"UPDATE {TABLE}", f"PREPARE SELECT {TABLE}", "BEGIN",
            "COMMIT", f"COPY {TABLE}"} <= set(names)
    for span in calls:
        attrs = span["attrs"]
        assert attrs["db.system"] == "postgresql" and attrs["db.namespace"] == "test"
        assert attrs["server.address"] == dsn["host"] and attrs["server.port"] == dsn["port"]
        assert attrs["spyglass.category"] == "sql"
    texts = [s["attrs"].get("db.query.text", "") for s in calls]
    assert f"SELECT * FROM {TABLE} WHERE owner <> ? ORDER BY id" in texts
    insert, = names[f"INSERT {TABLE}"]
    assert insert["attrs"]["db.operation.batch.size"] == 2
    update, = names[f"UPDATE {TABLE}"]
    assert update["attrs"]["db.operation.batch.size"] == 2
    assert update["attrs"]["db.response.returned_rows"] == 2
    copies = sorted(s["attrs"]["db.query.text"] for s in names[f"COPY {TABLE}"])
    assert copies == [f"COPY ({'SELECT * FROM ' + TABLE} WHERE id = $1) TO STDOUT",
                      f"COPY {TABLE} FROM STDIN", f"COPY {TABLE} TO STDOUT"]
    # a cursor's round trips (not its rows) fold into one span with a count
    cursor_spans = [s for s in names[f"SELECT {TABLE}"]
                    if s["attrs"]["db.query.text"] == f"SELECT id FROM {TABLE} ORDER BY id"]
    assert sum(s["attrs"].get("spyglass.count", 1) for s in cursor_spans) >= 4
    failed, = [s for s in calls if "no_such_column" in s["attrs"].get("db.query.text", "")]
    assert failed.get("status", {}).get("code") == 2
    assert failed["events"][0]["name"] == "exception"
    # what asyncpg runs inside copy_records_to_table (its column query) is part of its span
    assert not any("quote_literal" in text or "LIMIT" in text for text in texts)
    assert "secret-literal-apg" not in receiver.raw_text()
    assert "mallory-apg" not in receiver.raw_text()


POOL = """
import asyncio
import asyncpg

async def hold(pool, seconds):
    async with pool.acquire() as conn:
        await asyncio.sleep(seconds)

async def work():
    pool = await asyncpg.create_pool(host={host!r}, port={port}, user={user!r},
                                     database="test", min_size=1, max_size=1)
    for i in range(3):
        await pool.fetchval("SELECT $1::int", i)  # an N+1 loop through the pool
    holder = asyncio.ensure_future(hold(pool, 0.3))
    await asyncio.sleep(0.05)
    print(await pool.fetchval("SELECT 42"))  # waits ~0.25 s for the pool
    holder = asyncio.ensure_future(hold(pool, 0.3))
    await asyncio.sleep(0.05)
    try:
        await pool.acquire(timeout=0.05)
    except asyncio.TimeoutError:
        print("timed out")
    await holder
    await pool.close()

asyncio.run(work())
"""


def test_pool_wait_is_on_the_next_statement_and_a_slow_or_failed_acquire_has_a_span(
        receiver, dsn):
    spans, stdout = run_traced(receiver, POOL.format(**dsn), expect_spans=5,
                               SPYGLASS_TIMING_ASYNCPG="0.1")
    assert stdout.split() == ["42", "timed", "out"]
    names = by_name(spans)
    folded, = [s for s in names["SELECT"] if s["attrs"]["db.query.text"] == "SELECT $1::int"]
    assert folded["attrs"]["spyglass.count"] == 3  # the acquires between did not split them
    assert 0 <= folded["attrs"]["spyglass.db.pool.wait_ms"] < 100
    waited, = [s for s in names["SELECT"] if s["attrs"]["db.query.text"] == "SELECT ?"]
    assert waited["attrs"]["spyglass.db.pool.wait_ms"] >= 150
    acquires = names["acquire"]
    slow = [s for s in acquires if s["attrs"].get("spyglass.slow")]
    failed = [s for s in acquires if s.get("status", {}).get("code") == 2]
    assert slow and failed
    assert all(s["kind"] == CLIENT_KIND and s["attrs"]["db.system"] == "postgresql"
               for s in acquires)


def test_timing_threshold_marks_slow_queries_and_false_switches_asyncpg_off(receiver, dsn):
    body = f"""
        import asyncio, asyncpg
        async def work():
            conn = await asyncpg.connect(host={dsn['host']!r}, port={dsn['port']},
                                         user={dsn['user']!r}, database="test")
            await conn.fetchval("SELECT pg_sleep(0.15)")
            await conn.close()
        asyncio.run(work())
    """
    spans, _ = run_traced(receiver, body, expect_spans=3, SPYGLASS_TIMING_ASYNCPG="0.1")
    slow, = by_name(spans)["SELECT"]
    assert slow["attrs"]["spyglass.slow"] is True
    assert "asyncio.run(work())" in slow["attrs"]["spyglass.stack"]
    receiver.requests.clear()
    spans, _ = run_traced(receiver, body, expect_spans=1, SPYGLASS_TIMING_ASYNCPG="false")
    assert [s["name"] for s in spans] == ["request"]
