"""asyncpg against the real PostgreSQL (SPYGLASS_TEST_POSTGRES, default 127.0.0.1:5432):
``fetchval("SELECT 1")``, the cost spyglass adds per query outside any trace and inside a
sampled trace (folded: one statement repeated; unfolded: two alternating, a span each),
next to the round trip itself. No bar: the network dominates; this shows it stays so.

Bare runs call asyncpg's own method (the patched one's ``__wrapped__``) on the same
connection, so both sides share the loop, the socket and the server. Two clocks: CPU time
of the thread running the loop (what spyglass costs the app; waiting is not counted) and
wall time (it includes the server's jitter). Bare and traced runs alternate; each figure
is the best of ROUNDS.
"""
import asyncio
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


def query_loop(fetchval, conn, statements, request=None):
    async def queries():
        for statement in statements:
            await fetchval(conn, statement)

    async def run():
        for _ in range(N // PER_TRACE):
            if request is None:
                await queries()
            else:
                with request():
                    await queries()
    return run


async def best_of(cases):
    """{name: (bare run, traced run)} -> {name: (added cpu s, added wall s, bare wall s)}."""
    best = {}
    for _ in range(ROUNDS):
        for name, pair in cases.items():
            for index, run in enumerate(pair):
                cpu, wall = time.thread_time(), time.perf_counter()
                await run()
                cpu, wall = (time.thread_time() - cpu) / N, (time.perf_counter() - wall) / N
                old = best.get((name, index), (cpu, wall))
                best[name, index] = (min(old[0], cpu), min(old[1], wall))
    return {name: (best[name, 1][0] - best[name, 0][0], best[name, 1][1] - best[name, 0][1],
                   best[name, 0][1]) for name in cases}


async def main():
    import asyncpg
    import spyglass

    agent = spyglass.init(endpoint="http://127.0.0.1:9")
    tracer = agent.tracer
    export_to_sink(agent)
    traced = asyncpg.Connection.fetchval
    bare = getattr(traced, "__wrapped__", None)
    assert bare is not None, "asyncpg is not instrumented"
    host, _, port = os.environ.get("SPYGLASS_TEST_POSTGRES", "127.0.0.1:5432").rpartition(":")
    try:
        conn = await asyncpg.connect(host=host, port=int(port), database="test",
                                     user=os.environ.get("SPYGLASS_TEST_POSTGRES_USER",
                                                         "postgres"))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL not reachable ({exc}); skipped")
        return

    def request():
        return tracer.start_active_span("request")

    figures = await best_of({
        "outside any trace": (query_loop(bare, conn, FOLDED), query_loop(traced, conn, FOLDED)),
        "inside, folded": (query_loop(bare, conn, FOLDED, request),
                           query_loop(traced, conn, FOLDED, request)),
        "inside, 1 span each": (query_loop(bare, conn, UNFOLDED, request),
                                query_loop(traced, conn, UNFOLDED, request)),
    })
    await conn.close()
    round_trip = figures["outside any trace"][2]
    print(f"bare asyncpg fetchval('SELECT 1') round trip: {round_trip * 1e6:.1f} us wall; "
          f"added per query (best of {ROUNDS} x {N}):")
    for name, (cpu, wall, _) in figures.items():
        print(f"  {name:<22} {cpu * 1e6:6.2f} us CPU  {wall * 1e6:6.2f} us wall")


if __name__ == "__main__":
    asyncio.run(main())
