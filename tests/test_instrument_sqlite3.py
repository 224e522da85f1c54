"""sqlite3: spans for every statement, connect, commit and rollback, through the driver's
own factory hooks, with the driver behaving exactly as before."""
import sqlite3 as plain_sqlite3

import pytest

from support.calls import CLIENT_KIND, by_name, instrumented, request_span, run_traced

sqlite3 = instrumented("sqlite3")


def statements(exported):
    return [(s.name, s.attributes.get("db.query.text")) for s in exported.calls()]


def test_connections_and_cursors_stay_the_drivers_classes():
    conn = sqlite3.connect(":memory:")
    assert isinstance(conn, sqlite3.Connection)
    assert type(conn).__name__ == "Connection"
    cursor = conn.cursor()
    assert isinstance(cursor, sqlite3.Cursor)
    assert isinstance(conn.execute("SELECT 1"), sqlite3.Cursor)
    assert not hasattr(cursor, "callproc")  # no method the driver lacks
    with pytest.raises(AttributeError):
        cursor.anything = 1  # cursors take no new attributes, as the driver's


def test_outside_a_trace_nothing_is_recorded(exported):
    conn = sqlite3.connect(":memory:")
    conn.execute("SELECT 1").fetchall()
    assert exported.spans == []


def test_statements_connect_commit_rollback_are_client_spans(exported):
    with request_span():
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE users (id INTEGER, name TEXT)")
        conn.executemany("INSERT INTO users VALUES (?, ?)", [(1, "ann"), (2, "bob")])
        cursor = conn.cursor()
        cursor.execute("UPDATE users SET name = 'carl' WHERE id = 2")
        conn.commit()
        conn.execute("DELETE FROM users")
        conn.rollback()
        conn.executescript("SELECT 1; SELECT 2;")
    names = [s.name for s in exported.calls()]
    assert names == ["connect", "CREATE TABLE users", "INSERT users", "UPDATE users", "COMMIT",
                     "DELETE users", "ROLLBACK", "SELECT"]
    spans = {s.name: s for s in exported.calls()}
    insert = spans["INSERT users"].attributes
    assert insert["db.system"] == "sqlite"
    assert insert["db.namespace"] == ":memory:"
    assert insert["db.operation.name"] == "INSERT"
    assert insert["db.operation.batch.size"] == 2
    assert insert["spyglass.db.rows_affected"] == 2
    assert insert["spyglass.category"] == "sql"
    assert len(insert["spyglass.statement.hash"]) == 16
    update = spans["UPDATE users"].attributes
    assert update["db.query.text"] == "UPDATE users SET name = ? WHERE id = ?"
    assert update["db.query.summary"] == "UPDATE users"
    assert all(s.kind == 3 for s in exported.calls())
    root, = exported.named("request")
    assert root.attributes["spyglass.agg.sql.count"] == 8
    assert root.attributes["spyglass.agg.sql.duration_ms"] > 0


def test_a_failed_statement_is_an_error_span_and_the_app_sees_its_own_exception(exported):
    conn = sqlite3.connect(":memory:")
    with request_span():
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            conn.execute("SELECT * FROM missing")
    span, = exported.calls()
    assert span.status == 2
    assert span.events[0][1] == "exception"
    assert span.keep


def test_user_factories_row_factory_and_backup_keep_working(exported):
    class MyCursor(plain_sqlite3.Cursor):
        def first(self):
            return self.fetchone()[0]

    class MyConnection(plain_sqlite3.Connection):
        def hello(self):
            return "hi"

    with request_span():
        conn = sqlite3.connect(":memory:", factory=MyConnection)
        assert isinstance(conn, MyConnection) and conn.hello() == "hi"
        cursor = conn.cursor(MyCursor)
        assert isinstance(cursor, MyCursor)
        assert cursor.execute("SELECT 42").first() == 42
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT 1 AS one").fetchone()
        assert row["one"] == 1
        target = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE t (x)")
        conn.backup(target)
        assert target.execute("SELECT count(*) FROM t").fetchone()[0] == 0
        with conn:
            conn.execute("INSERT INTO t VALUES (1)")
        assert [r[0] for r in conn.execute("SELECT x FROM t")] == [1]
    assert "SELECT" in [s.name for s in exported.calls()]
    assert any(s.name == "SELECT" and s.attributes["db.query.text"] == "SELECT ?"
               for s in exported.calls())


def test_positional_factory_and_a_factory_function_are_respected():
    made = []

    def factory(*args, **kwargs):
        made.append(1)
        return plain_sqlite3.Connection(*args, **kwargs)

    conn = sqlite3.connect(":memory:", 5.0, 0, "DEFERRED", True, factory)
    assert made == [1] and isinstance(conn, sqlite3.Connection)
    assert conn.execute("SELECT 1").fetchone() == (1,)


def test_n_plus_one_runs_fold_into_one_span_with_a_count(exported):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id INTEGER)")
    with request_span():
        for i in range(20):
            conn.execute("SELECT * FROM t WHERE id = ?", (i,)).fetchall()
        conn.execute("SELECT 1")
        for i in range(3):
            conn.execute(f"SELECT * FROM t WHERE id = {i}").fetchall()
    spans = exported.calls()
    assert [s.name for s in spans] == ["SELECT t", "SELECT", "SELECT t"]
    assert spans[0].attributes["spyglass.count"] == 20
    assert "spyglass.count" not in spans[1].attributes
    assert spans[2].attributes["spyglass.count"] == 3  # literals differ, statement the same
    root, = exported.named("request")
    assert root.attributes["spyglass.agg.sql.count"] == 24


def test_end_to_end_under_autowrapt_no_literal_leaves_the_process(receiver):
    spans, _ = run_traced(receiver, """
        import sqlite3
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE accounts (name TEXT, secret TEXT, pin INTEGER)")
        conn.execute("INSERT INTO accounts VALUES ('alice', 'hunter2-sqlite', 918273)")
        conn.execute("SELECT * FROM accounts WHERE secret = 'hunter2-sqlite' AND pin = 918273")
        cur = conn.cursor()
        cur.execute("SELECT name FROM accounts WHERE pin IN (918273, 555444)")
        print(cur.fetchall())
    """, expect_spans=6)
    calls = [s for s in spans if s["kind"] == CLIENT_KIND]
    assert {s["attrs"]["db.system"] for s in calls} == {"sqlite"}
    assert {s["name"] for s in calls} >= {"CREATE TABLE accounts", "INSERT accounts",
                                          "SELECT accounts"}
    text = receiver.raw_text()
    for literal in ("hunter2-sqlite", "918273", "555444", "alice"):
        assert literal not in text
    select = [s for s in calls if s["attrs"].get("db.query.text", "").startswith("SELECT name")]
    assert select[0]["attrs"]["db.query.text"] == "SELECT name FROM accounts WHERE pin IN (?)"
