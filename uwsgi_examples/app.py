"""A small Flask app to see spyglass at work under uWSGI or gunicorn. Nothing in it knows
about spyglass except the custom metric: requests, queries, outbound calls and errors are
traced by ``AUTOWRAPT_BOOTSTRAP=flask`` alone.

Routes: ``/`` (fast), ``/users/<int:uid>`` (a lookup), ``/slow-sql`` (a slow SQLite
query), ``/n-plus-one`` (one query per order: the classic N+1 loop), ``/error`` (an
unhandled exception, so a 500), ``/outbound`` (an HTTP call to ``EXAMPLE_UPSTREAM`` — the
demo's second service, inventory.py — else to this app's own ``/``), ``/slow`` (a request
over spyglass's slow_request_time).
"""
import os
import sqlite3
import tempfile
import time
import urllib.request

from flask import Flask, request

from spyglass import metrics

app = Flask(__name__)

DATABASE = os.environ.get("EXAMPLE_DATABASE") or os.path.join(tempfile.gettempdir(),
                                                                "spyglass-example.sqlite3")
# Counting to this many rows in a recursive query takes SQLite about a tenth of a second.
SLOW_ROWS = 300_000


@app.route("/")
def index():
    metrics.counter("example.greetings", labels={"worker.pid": os.getpid()})
    return {"hello": "world", "pid": os.getpid()}


_schema_ready = False


def _database():
    global _schema_ready
    connection = sqlite3.connect(DATABASE, timeout=10)
    if _schema_ready:
        return connection
    connection.executescript("""
        CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, user_id INTEGER, total REAL);
        INSERT OR IGNORE INTO users VALUES (7, 'ada'), (8, 'grace');
        INSERT OR IGNORE INTO orders
            SELECT value, 7, value * 9.5 FROM json_each('[1,2,3,4,5,6,7,8,9,10,11,12]');
    """)
    _schema_ready = True
    return connection


@app.route("/users/<int:uid>")
def user(uid):
    with _database() as connection:
        row = connection.execute("SELECT id, name FROM users WHERE id = ?", (uid,)).fetchone()
    if row is None:
        return {"error": "no such user"}, 404
    return {"id": row[0], "name": row[1]}


@app.route("/n-plus-one")
def n_plus_one():
    with _database() as connection:
        ids = [order_id for (order_id,) in connection.execute(
            "SELECT id FROM orders WHERE user_id = 7 ORDER BY id")]
        totals = [connection.execute("SELECT total FROM orders WHERE id = ?", (order_id,))
                  .fetchone()[0] for order_id in ids]
    return {"orders": len(ids), "total": sum(totals)}


@app.route("/slow")
def slow():
    time.sleep(1.2)  # over slow_request_time (1 s): kept even if head sampling drops it
    return {"slept": 1.2}


@app.route("/slow-sql")
def slow_sql():
    with sqlite3.connect(DATABASE) as connection:
        (rows,), = connection.execute(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?) "
            "SELECT count(*) FROM n", (SLOW_ROWS,)).fetchall()
    return {"rows": rows}


@app.route("/error")
def error():
    raise RuntimeError("this route always fails")


@app.route("/outbound")
def outbound():
    # EXAMPLE_UPSTREAM, or this app's own "/": then another worker answers, so keep more
    # than one process (or threads), and don't call it from every worker at once.
    upstream = os.environ.get("EXAMPLE_UPSTREAM") or request.host_url
    with urllib.request.urlopen(upstream, timeout=5) as response:
        return {"upstream_status": response.status}
