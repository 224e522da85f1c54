"""psycopg2 against the real PostgreSQL (SPYGLASS_TEST_POSTGRES, default 127.0.0.1:5432):
``SELECT 1`` execute+fetchall, the cost spyglass adds per query outside any trace and inside
a sampled trace (folded: one statement repeated; unfolded: two alternating, a span each),
next to the round trip itself. No bar: the network dominates; this shows it stays so.

Two clocks: CPU time of the querying thread (what spyglass costs the app; stable, since
waiting for the server is not counted) and wall time (what a request sees; it includes the
server's and the network's jitter, tens of µs from one run to the next on a shared host).
Bare and traced runs alternate; each figure is the best of ROUNDS.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _util import export_to_sink  # noqa: E402

N = 2_000  # queries per timed run
ROUNDS = 9
PER_TRACE = 100
FOLDED = ("SELECT 1",) * PER_TRACE
UNFOLDED = ("SELECT 1", "SELECT 1 AS one") * (PER_TRACE // 2)


def query_loop(cursor, statements, request=None):
    execute, fetchall = cursor.execute, cursor.fetchall

    def queries():
        for statement in statements:
            execute(statement)
            fetchall()

    def run():
        for _ in range(N // PER_TRACE):
            if request is None:
                queries()
            else:
                with request():
                    queries()
    return run


def best_of(cases):
    """{name: (bare run, traced run)} -> {name: (added cpu s, added wall s, bare wall s)}."""
    best = {}
    for _ in range(ROUNDS):
        for name, pair in cases.items():
            for index, run in enumerate(pair):
                cpu, wall = time.thread_time(), time.perf_counter()
                run()
                cpu, wall = (time.thread_time() - cpu) / N, (time.perf_counter() - wall) / N
                old = best.get((name, index), (cpu, wall))
                best[name, index] = (min(old[0], cpu), min(old[1], wall))
    return {name: (best[name, 1][0] - best[name, 0][0], best[name, 1][1] - best[name, 0][1],
                   best[name, 0][1]) for name in cases}


def main():
    import psycopg2

    host, _, port = os.environ.get("SPYGLASS_TEST_POSTGRES", "127.0.0.1:5432").rpartition(":")
    dsn = dict(host=host, port=int(port), dbname="test",
               user=os.environ.get("SPYGLASS_TEST_POSTGRES_USER", "postgres"))
    try:
        bare = psycopg2.connect(**dsn).cursor()
    except psycopg2.OperationalError as exc:
        print(f"PostgreSQL not reachable ({exc}); skipped")
        return
    import spyglass

    agent = spyglass.init(endpoint="http://127.0.0.1:9")
    tracer = agent.tracer
    export_to_sink(agent)
    traced = psycopg2.connect(**dsn).cursor()
    assert type(traced) is not psycopg2.extensions.cursor, "psycopg2 is not instrumented"

    def request():
        return tracer.start_active_span("request")

    figures = best_of({
        "outside any trace": (query_loop(bare, FOLDED), query_loop(traced, FOLDED)),
        "inside, folded": (query_loop(bare, FOLDED, request),
                           query_loop(traced, FOLDED, request)),
        "inside, 1 span each": (query_loop(bare, UNFOLDED, request),
                                query_loop(traced, UNFOLDED, request)),
    })
    round_trip = figures["outside any trace"][2]
    print(f"bare psycopg2 SELECT 1 round trip: {round_trip * 1e6:.1f} us wall; added per "
          f"query (best of {ROUNDS} x {N}):")
    for name, (cpu, wall, _) in figures.items():
        print(f"  {name:<22} {cpu * 1e6:6.2f} us CPU  {wall * 1e6:6.2f} us wall")


if __name__ == "__main__":
    main()
