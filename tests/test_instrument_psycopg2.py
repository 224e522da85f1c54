"""psycopg2 against the real PostgreSQL: spans through connection_factory/cursor_factory
subclasses, with extras (register_json, RealDictCursor, execute_values, DictConnection),
named cursors and ``with conn:`` working as before."""
import pytest

from support.calls import CLIENT_KIND, instrumented, request_span, run_traced
from support.services import postgres_dsn

psycopg2 = pytest.importorskip("psycopg2")
instrumented("psycopg2")
import psycopg2.extensions  # noqa: E402
import psycopg2.extras  # noqa: E402


@pytest.fixture
def dsn():
    return postgres_dsn()


def test_spans_carry_the_database_semantic_conventions(dsn, exported):
    with request_span():
        conn = psycopg2.connect(**dsn)
        cursor = conn.cursor()
        cursor.execute("CREATE TEMP TABLE orders (id int, note text)")
        cursor.executemany("INSERT INTO orders VALUES (%s, %s)", [(1, "a"), (2, "b")])
        cursor.execute("SELECT * FROM orders WHERE note = %(note)s", {"note": "a"})
        assert cursor.fetchall() == [(1, "a")]
        conn.commit()
        with pytest.raises(psycopg2.errors.UndefinedTable):
            cursor.execute("SELECT * FROM nowhere")
        conn.rollback()
        conn.close()
    calls = exported.calls()
    assert [s.name for s in calls] == ["connect", "CREATE TABLE orders", "INSERT orders",
                                      "SELECT orders", "COMMIT", "SELECT nowhere", "ROLLBACK"]
    select = calls[3].attributes
    assert select["db.system"] == "postgresql"
    assert select["db.namespace"] == "test"
    assert select["server.address"] == dsn["host"] and select["server.port"] == dsn["port"]
    assert select["db.query.text"] == "SELECT * FROM orders WHERE note = %(note)s"
    assert select["db.response.returned_rows"] == 1
    assert calls[2].attributes["db.operation.batch.size"] == 2
    assert calls[5].status == 2 and calls[5].keep
    assert all(s.kind == 3 for s in calls)


def test_extras_and_user_factories_keep_working(dsn, exported):
    with request_span():
        conn = psycopg2.connect(**dsn)
        assert isinstance(conn, psycopg2.extensions.connection)
        psycopg2.extras.register_json(conn)
        psycopg2.extensions.register_type(psycopg2.extensions.UNICODE, conn)
        cursor = conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
        assert isinstance(cursor, psycopg2.extras.RealDictCursor)
        cursor.execute("CREATE TEMP TABLE docs (id int, body json)")
        psycopg2.extras.execute_values(cursor, "INSERT INTO docs VALUES %s",
                                       [(1, '{"k": "v1"}'), (2, '[1, 2]')])
        cursor.execute("SELECT id, body FROM docs ORDER BY id")
        assert cursor.fetchall() == [{"id": 1, "body": {"k": "v1"}}, {"id": 2, "body": [1, 2]}]

        conn.cursor_factory = psycopg2.extras.NamedTupleCursor
        row = conn.cursor()
        row.execute("SELECT 7 AS seven")
        assert row.fetchone().seven == 7

        with conn:  # a transaction, committed on exit
            with conn.cursor("server_side") as named:
                named.execute("SELECT generate_series(1, 10)")
                assert named.fetchmany(3) == [(1,), (2,), (3,)]
                assert named.name == "server_side"

        dict_conn = psycopg2.connect(connection_factory=psycopg2.extras.DictConnection, **dsn)
        assert isinstance(dict_conn, psycopg2.extras.DictConnection)
        dict_cursor = dict_conn.cursor()
        assert isinstance(dict_cursor, psycopg2.extras.DictCursor)
        dict_cursor.execute("SELECT 1 AS one")
        assert dict_cursor.fetchone()["one"] == 1

        class Mine(psycopg2.extensions.cursor):
            def one(self):
                return self.fetchone()[0]

        mine = psycopg2.connect(cursor_factory=Mine, **dsn).cursor()
        mine.execute("SELECT 5")
        assert isinstance(mine, Mine) and mine.one() == 5
    names = [s.name for s in exported.calls()]
    assert "INSERT docs" in names and "SELECT docs" in names and names.count("connect") == 3
    assert "SELECT" in names  # DictCursor's, after its class was given the traced subclass
    insert = exported.named("INSERT docs")[0].attributes
    assert insert["db.query.text"] == "INSERT INTO docs VALUES (?,?)"


def test_callproc_only_where_the_driver_has_it(dsn, exported):
    conn = psycopg2.connect(**dsn)
    with request_span():
        cursor = conn.cursor()
        cursor.callproc("lower", ("ABC",))
        assert cursor.fetchone() == ("abc",)
    span, = exported.calls()
    assert span.name == "CALL lower"
    assert span.attributes["db.stored_procedure.name"] == "lower"


def test_end_to_end_under_autowrapt_no_literal_leaves_the_process(receiver, dsn):
    spans, stdout = run_traced(receiver, f"""
        import psycopg2, psycopg2.extras
        conn = psycopg2.connect(host={dsn['host']!r}, port={dsn['port']}, user={dsn['user']!r},
                                dbname="test")
        psycopg2.extras.register_json(conn)
        cur = conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
        cur.execute("CREATE TEMP TABLE cards (owner text, number text, cvv int, extra json)")
        psycopg2.extras.execute_values(cur, "INSERT INTO cards VALUES %s",
            [("mallory-pg", "4111111111111111", 737373, '{{"pin": "998877"}}')])
        cur.execute("SELECT owner FROM cards WHERE number = '4111111111111111' AND cvv = 737373")
        print(cur.fetchall())
        cur.execute("SELECT extra FROM cards WHERE owner = %s", ("mallory-pg",))
        print(cur.fetchall())
    """, expect_spans=6)
    assert "mallory-pg" in stdout and "998877" in stdout  # the app saw its data
    calls = [s for s in spans if s["kind"] == CLIENT_KIND]
    assert {s["attrs"]["db.system"] for s in calls} == {"postgresql"}
    assert {"INSERT cards", "SELECT cards", "connect"} <= {s["name"] for s in calls}
    text = receiver.raw_text()
    for literal in ("mallory-pg", "4111111111111111", "737373", "998877"):
        assert literal not in text
