"""The cost spyglass adds to a sqlite3 ``SELECT 1`` (execute + fetchall) in instructions,
counted by valgrind's callgrind: unlike a timing, the count does not depend on what else the
machine runs, so two commits (or two machines' loads) compare exactly.

Each case runs in its own process under callgrind twice, with SMALL and LARGE queries; the
difference of the app thread's instruction counts over LARGE - SMALL queries is the cost per
query (start-up and imports cancel out; the reporter thread's work, folding metrics, is its
own thread's and not counted). Cases:

* plain: the bare driver, spyglass not imported;
* outside: spyglass running, the instrumented driver, no trace (a script's, a worker's loop),
  against ``outside_bare``, the bare driver with spyglass running (its threads wake the app's
  for the GIL in proportion to the run's wall time, which callgrind stretches: that cost is
  the same in both, and not the query's);
* inside: in sampled traces of PER_TRACE queries (the same statement: folded), against
  ``inside_bare``, the bare driver in the same traces;
* unfolded: the same traces of two statements alternating, every query a span of its own
  (bench_sqlite.py's second inside figure), against ``unfolded_bare``.

Caveat (open): the app thread's count is not wholly the query's. With spyglass running, the
bare driver costs ~3,200 instructions a query more than without it (``outside_bare`` against
``plain``, on a loaded machine): work proportional to the run's wall time (the sensor's
threads taking the GIL), which callgrind and the machine's load stretch. Compare figures taken
under like load, and prefer ``outside`` against ``outside_bare``. Much of it is the reporter
thread's first minute (its imports, package metadata read for the resource, a transport
made anew each time the closed port refuses a send): a SMALL run ends before it does, a
LARGE one does not, and the bare cases' counts move by ~1,000 instructions a query from one
run to the next. To compare two trees, run both at once (``--source``), under like load.

Instructions become microseconds at the plain loop's own speed on this machine (its per-query
time, measured natively, over its per-query instructions): ``added_us = added_instructions *
plain_us / plain_instructions``.

    python benchmarks/bench_instructions.py                  # this checkout's spyglass
    python benchmarks/bench_instructions.py --source DIR     # another tree's (say, a commit's
                                                             # `git archive`), same venv
    python benchmarks/bench_instructions.py [--source DIR] inside unfolded   # those figures
                                                             # only (and their bare cases)
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _util import export_to_sink, instructions_per_call, verdict  # noqa: E402

SMALL, LARGE = 2_000, 12_000
PER_TRACE = 100
BAR_OUTSIDE_US = 1.0
BAR_INSIDE_US = 1.5
# Each figure: (its case, the bare case it is compared with), as printed.
FIGURES = {"outside": ("outside", "outside_bare"),
           "inside": ("inside", "inside_bare"),
           "unfolded": ("unfolded", "unfolded_bare")}
FIGURE_NAMES = {"outside": "added outside any trace",
                "inside": "added inside a sampled trace (folded)",
                "unfolded": "added inside a sampled trace (unfolded: a span each)"}
FOLDED = ("SELECT 1",) * PER_TRACE
# Obfuscation makes "SELECT 2" the same statement as "SELECT 1": these two differ.
UNFOLDED = ("SELECT 1", "SELECT 1 AS one") * (PER_TRACE // 2)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def loop(case, queries):
    """In this process: run ``queries`` queries the way ``case`` says."""
    import sqlite3

    bare = sqlite3.connect(":memory:").cursor()
    if case == "plain":
        cursor, request = bare, None
    else:
        import spyglass

        agent = spyglass.init(endpoint="http://127.0.0.1:9")
        export_to_sink(agent)
        instrumented = sqlite3.connect(":memory:").cursor()
        assert type(instrumented) is not sqlite3.Cursor, "sqlite3 is not instrumented"
        cursor = bare if case.endswith("_bare") else instrumented
        request = agent.tracer.start_active_span if not case.startswith("outside") else None
    execute = cursor.execute
    if request is None:
        for _ in range(queries):
            execute("SELECT 1").fetchall()
    else:
        statements = UNFOLDED if case.startswith("unfolded") else FOLDED
        for _ in range(queries // PER_TRACE):
            with request("request"):
                for statement in statements:
                    execute(statement).fetchall()


def per_query(case, source):
    """The app thread's instructions per query (callgrind's Ir), ``source``'s spyglass
    ahead of the installed package."""
    return instructions_per_call(__file__, "--loop", case, small=SMALL, large=LARGE,
                                 env={"PYTHONPATH": source})


def plain_us_per_query(rounds=15, queries=20_000):
    import sqlite3

    execute = sqlite3.connect(":memory:").cursor().execute
    best = float("inf")
    for _ in range(rounds):
        start = time.thread_time()
        for _ in range(queries):
            execute("SELECT 1").fetchall()
        best = min(best, (time.thread_time() - start) / queries)
    return best * 1e6


def main(source=REPO, figures=tuple(FIGURES)):
    counts = {}
    cases = ["plain"] + [case for figure in figures for case in FIGURES[figure]]
    for case in cases:  # each a minute or more under callgrind: said as it comes
        counts[case] = per_query(case, source)
        print(f"{case}: {counts[case]:.0f} instructions per query", file=sys.stderr, flush=True)
    plain_us = plain_us_per_query()
    us_per_instruction = plain_us / counts["plain"]
    print(f"spyglass from: {source}")
    print(f"plain sqlite3 SELECT 1 execute+fetchall: {counts['plain']:.0f} instructions, "
          f"{plain_us:.2f} us per query here")
    for figure in figures:
        case, bare = FIGURES[figure]
        added = counts[case] - counts[bare]
        bar = BAR_OUTSIDE_US if figure == "outside" else BAR_INSIDE_US
        print(f"{FIGURE_NAMES[figure]}: {added:.0f} instructions = "
              f"{added * us_per_instruction:.2f} us (bar <= {bar}) "
              f"{verdict(added * us_per_instruction, bar)}")
    print(json.dumps({"instructions_per_query": counts, "plain_us": plain_us}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--loop"]:
        loop(sys.argv[2], int(sys.argv[3]))
        # Ended here: at exit the sensor folds on this thread the metric values its
        # reporter thread has not folded yet (the reporter's work, and as many as the run's
        # wall time under callgrind left over, up to metrics.MAX_PENDING: not the query's).
        os._exit(0)
    else:
        arguments = sys.argv[1:]
        source = REPO
        if arguments[:1] == ["--source"]:
            source = os.path.abspath(arguments[1])
            arguments = arguments[2:]
        main(source, tuple(arguments) or tuple(FIGURES))
