"""An unmodified Flask app for gevent (``gunicorn -k gevent gevent_app:app``): each request
waits (``time.sleep``, a greenlet switch once patched) between two queries of its own, so
that requests interleave in one OS thread."""
import sqlite3
import time

from flask import Flask

app = Flask(__name__)


@app.route("/work/<int:n>")
def work(n):
    connection = sqlite3.connect(":memory:")
    first = connection.execute("SELECT ?", (n,)).fetchone()[0]
    time.sleep(0.05)
    second = connection.execute("SELECT ? + 1", (n,)).fetchone()[0]
    connection.close()
    return {"n": first, "next": second}


@app.route("/health")
def health():
    return "ok"
