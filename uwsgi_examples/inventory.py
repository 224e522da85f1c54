"""A second small service for the demo: the shop's ``/outbound`` asks it for stock, so one
trace crosses two processes (and two services). Like app.py it knows nothing of spyglass:
``AUTOWRAPT_BOOTSTRAP=flask python inventory.py`` traces it, as service ``inventory``
(named after the script), and continues the caller's trace from its ``traceparent``.

Routes: ``/stock/<int:item>`` (one SQLite lookup), ``/health``. Listens on 127.0.0.1:$PORT
(8001 when unset).
"""
import os
import sqlite3

from flask import Flask

app = Flask(__name__)


@app.route("/stock/<int:item>")
def stock(item):
    with sqlite3.connect(":memory:") as connection:
        connection.execute("CREATE TABLE stock (item INTEGER PRIMARY KEY, count INTEGER)")
        connection.execute("INSERT INTO stock VALUES (?, ?)", (item, 3 * item))
        (count,) = connection.execute("SELECT count FROM stock WHERE item = ?", (item,)).fetchone()
    return {"item": item, "in_stock": count}


@app.route("/health")
def health():
    return {"ok": True}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8001")), threaded=True)
