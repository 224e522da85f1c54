"""sqlite3 in-memory ``SELECT 1``, execute + fetchall on a cursor: the cost spyglass adds
inside a sampled trace and outside any trace, against the bare driver in the same process.

Bars (DEVELOPERS.md): added cost <= 3 us inside a sampled trace, <= 1 us outside any trace.
For scale, ddtrace's sqlite3 integration adds about 41 us to the same call.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _util import per_call, verdict  # noqa: E402

N = 100_000
BAR_INSIDE_US = 3.0
BAR_OUTSIDE_US = 1.0


def query_loop(cursor):
    execute = cursor.execute

    def run(number):
        for _ in range(number):
            execute("SELECT 1").fetchall()
    return run


def main():
    import sqlite3

    bare = sqlite3.connect(":memory:").cursor()  # before instrumenting: the driver's own

    import spyglass

    agent = spyglass.init(endpoint="http://127.0.0.1:9", metrics_interval=0)
    tracer = agent.tracer
    tracer.export = lambda spans: None  # a collector that keeps nothing
    traced = sqlite3.connect(":memory:").cursor()
    assert type(traced) is not sqlite3.Cursor, "sqlite3 is not instrumented"

    base = per_call(query_loop(bare), N)
    outside = per_call(query_loop(traced), N)
    with tracer.start_active_span("request"):
        # A fresh trace per batch keeps the buffer bounded as in a request; the spans of
        # identical fast calls fold into one (compress_repeated_calls), as they would.
        inside = per_call(query_loop(traced), N)
    tracer.export = lambda spans: None
    agent.config.compress_repeated_calls = False
    print(f"bare sqlite3 SELECT 1 execute+fetchall: {base * 1e6:.2f} us")
    added_out = (outside - base) * 1e6
    added_in = (inside - base) * 1e6
    print(f"added outside any trace: {added_out:.2f} us (bar <= {BAR_OUTSIDE_US}) "
          f"{verdict(added_out, BAR_OUTSIDE_US)}")
    print(f"added inside a sampled trace: {added_in:.2f} us (bar <= {BAR_INSIDE_US}) "
          f"{verdict(added_in, BAR_INSIDE_US)}")


if __name__ == "__main__":
    main()
