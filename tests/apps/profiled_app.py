"""A Flask app whose slow route spends its time in pure Python that no instrumentation
knows: what profiles linked to traces are for (tests/test_profiling_uwsgi.py)."""
import os
import threading
import time

from flask import Flask

app = Flask(__name__)


def render_report(seconds):
    """Busy in the app's own Python for ``seconds``: no span covers it."""
    end = time.monotonic() + seconds
    total = 0
    while time.monotonic() < end:
        for number in range(200):
            total += number * number % 7
    return total


@app.route("/")
def index():
    return {"pid": os.getpid()}


@app.route("/sampling")
def sampling():
    """Whether this worker's profiler samples yet (it starts with the sensor's reporter,
    at its first tick after the fork)."""
    running = any(thread.name == "spyglass-profiler" for thread in threading.enumerate())
    return {"pid": os.getpid(), "sampling": running}


@app.route("/slow")
def slow():
    return {"lines": render_report(0.3), "pid": os.getpid()}


@app.route("/fast")
def fast():
    return {"lines": render_report(0.1), "pid": os.getpid()}
