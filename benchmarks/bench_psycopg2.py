"""psycopg2 against the real PostgreSQL (SPYGLASS_TEST_POSTGRES, default 127.0.0.1:5432):
``SELECT 1`` execute+fetchall, the cost spyglass adds inside a sampled trace and outside any
trace, next to the round trip itself. No bar: the network dominates; this shows it stays so.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _util import per_call  # noqa: E402

N = 2_000


def query_loop(cursor):
    def run(number):
        for _ in range(number):
            cursor.execute("SELECT 1")
            cursor.fetchall()
    return run


def main():
    import psycopg2

    host, _, port = os.environ.get("SPYGLASS_TEST_POSTGRES", "127.0.0.1:5432").rpartition(":")
    dsn = dict(host=host, port=int(port), user=os.environ.get("SPYGLASS_TEST_POSTGRES_USER", "postgres"),
               dbname="test")
    try:
        bare = psycopg2.connect(**dsn).cursor()
    except psycopg2.OperationalError as exc:
        print(f"PostgreSQL not reachable ({exc}); skipped")
        return
    import spyglass

    agent = spyglass.init(endpoint="http://127.0.0.1:9", metrics_interval=0)
    agent.tracer.export = lambda spans: None
    traced = psycopg2.connect(**dsn).cursor()
    base = per_call(query_loop(bare), N)
    outside = per_call(query_loop(traced), N)
    with agent.tracer.start_active_span("request"):
        inside = per_call(query_loop(traced), N)
    print(f"bare psycopg2 SELECT 1 round trip: {base * 1e6:.1f} us")
    print(f"added outside any trace: {(outside - base) * 1e6:.2f} us")
    print(f"added inside a sampled trace: {(inside - base) * 1e6:.2f} us")


if __name__ == "__main__":
    main()
