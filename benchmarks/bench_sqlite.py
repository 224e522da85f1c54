"""sqlite3 in-memory ``SELECT 1``, execute + fetchall on a cursor: the cost spyglass adds
per query, against the bare driver in the same process, and the same for peer agents
(ddtrace, OpenTelemetry, Elastic APM), each in its own subprocess so patches never mix.

Bars (DEVELOPERS.md): added cost <= 1.5 us inside a sampled trace, <= 1 us outside any trace.
Inside a trace two figures are measured and both must meet the bar:

* folded: the same statement over and over (an N+1 loop), which compress_repeated_calls
  folds into one span with a count;
* unfolded: two statements alternating, so that every query becomes a span of its own.

Each "request" is a trace of PER_TRACE queries; the bare driver runs the same loop inside
the same traces, so the trace's own start and finish cancel out and what is left is the
cost per query, span export included. Timings are the best of ROUNDS interleaved runs
(bare and traced alternate), in CPU time of the thread running the queries: what the app's
thread pays, unaffected by other processes taking the machine's cores.

    python benchmarks/bench_sqlite.py            # spyglass, then every peer installed
    python benchmarks/bench_sqlite.py spyglass   # one agent only (also: ddtrace, otel, elasticapm)
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _util import export_to_sink, verdict  # noqa: E402

QUERIES = 40_000  # per timed run
ROUNDS = 15
PEER_QUERIES, PEER_ROUNDS = 4_000, 5  # peers add ~40x more per query: fewer suffice
PER_TRACE = 100  # queries per request (well under max_spans_per_trace)
BAR_INSIDE_US = 1.5
BAR_OUTSIDE_US = 1.0

FOLDED = ("SELECT 1",) * PER_TRACE
# Obfuscation makes "SELECT 2" the same statement as "SELECT 1": these two differ.
UNFOLDED = ("SELECT 1", "SELECT 1 AS one") * (PER_TRACE // 2)


def untraced_loop(cursor, statements, queries):
    execute = cursor.execute

    def run():
        for _ in range(queries // PER_TRACE):
            for statement in statements:
                execute(statement).fetchall()
    return run


def traced_loop(cursor, statements, request, queries):
    """``request()``: a context manager that is one trace's local root, activated."""
    execute = cursor.execute

    def run():
        for _ in range(queries // PER_TRACE):
            with request():
                for statement in statements:
                    execute(statement).fetchall()
    return run


def added_costs(bare, traced, request, queries=QUERIES, rounds=ROUNDS):
    """Added µs per query: outside any trace, inside (folded), inside (unfolded)."""
    cases = {
        "outside": (untraced_loop(bare, FOLDED, queries), untraced_loop(traced, FOLDED, queries)),
        "inside_folded": (traced_loop(bare, FOLDED, request, queries),
                          traced_loop(traced, FOLDED, request, queries)),
        "inside_unfolded": (traced_loop(bare, UNFOLDED, request, queries),
                            traced_loop(traced, UNFOLDED, request, queries)),
    }
    best = {}
    for _ in range(rounds):
        for name, pair in cases.items():
            for index, run in enumerate(pair):
                start = time.thread_time()
                run()
                elapsed = (time.thread_time() - start) / queries
                key = (name, index)
                best[key] = min(best.get(key, elapsed), elapsed)
    figures = {name: (best[name, 1] - best[name, 0]) * 1e6 for name in cases}
    figures["bare"] = best["outside", 0] * 1e6
    return figures


def bare_cursor():
    import sqlite3

    return sqlite3.connect(":memory:").cursor()


# -- one agent each, in its own process ---------------------------------------------------

def measure_spyglass():
    bare = bare_cursor()  # before instrumenting: the driver's own
    import sqlite3

    import spyglass

    agent = spyglass.init(endpoint="http://127.0.0.1:9")
    export_to_sink(agent)  # a collector that keeps nothing
    traced = sqlite3.connect(":memory:").cursor()
    assert type(traced) is not sqlite3.Cursor, "sqlite3 is not instrumented"
    tracer = agent.tracer
    return added_costs(bare, traced, lambda: tracer.start_active_span("request"))


def measure_ddtrace():
    bare = bare_cursor()
    os.environ.setdefault("DD_TRACE_AGENT_URL", "http://127.0.0.1:9")
    os.environ.setdefault("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false")
    os.environ.setdefault("DD_REMOTE_CONFIGURATION_ENABLED", "false")
    import ddtrace
    from ddtrace import patch

    patch(sqlite3=True)
    import sqlite3

    tracer = getattr(ddtrace, "tracer", None)
    if tracer is None:
        from ddtrace.trace import tracer
    _discard_ddtrace_writes(tracer)
    traced = sqlite3.connect(":memory:").cursor()
    return added_costs(bare, traced, lambda: tracer.trace("request"), PEER_QUERIES,
                       PEER_ROUNDS)


def _discard_ddtrace_writes(tracer):
    # A writer that keeps nothing, like the no-op exporters given to the others.
    class NullWriter:
        def __getattr__(self, name):
            return lambda *args, **kwargs: None

    aggregator = getattr(tracer, "_span_aggregator", None)  # ddtrace 3+
    for owner, name in ((aggregator, "writer"), (tracer, "_writer")):
        if owner is not None and hasattr(owner, name):
            setattr(owner, name, NullWriter())
            return
    raise RuntimeError("cannot find ddtrace's writer to silence it")


def measure_otel():
    bare = bare_cursor()
    from opentelemetry import trace
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    class NullExporter(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    # On the app's thread, as spyglass's no-op export is: a batch processor's queue
    # overflows at this rate and its warnings would be timed instead.
    provider.add_span_processor(SimpleSpanProcessor(NullExporter()))
    trace.set_tracer_provider(provider)
    SQLite3Instrumentor().instrument(tracer_provider=provider)
    import sqlite3

    traced = sqlite3.connect(":memory:").cursor()
    tracer = provider.get_tracer("bench")
    return added_costs(bare, traced, lambda: tracer.start_as_current_span("request"),
                       PEER_QUERIES, PEER_ROUNDS)


def measure_elasticapm():
    bare = bare_cursor()
    import contextlib

    import elasticapm

    client = elasticapm.Client(service_name="bench", server_url="http://127.0.0.1:9",
                               disable_send=True, central_config=False, metrics_interval="0ms",
                               cloud_provider="none", instrument=True)
    elasticapm.instrument()
    import sqlite3

    traced = sqlite3.connect(":memory:").cursor()

    @contextlib.contextmanager
    def request():
        client.begin_transaction("request")
        try:
            yield
        finally:
            client.end_transaction("request", "success")

    return added_costs(bare, traced, request, PEER_QUERIES, PEER_ROUNDS)


AGENTS = {
    "spyglass": ("spyglass", measure_spyglass),
    "ddtrace": ("ddtrace", measure_ddtrace),
    "otel": ("opentelemetry.instrumentation.sqlite3", measure_otel),
    "elasticapm": ("elasticapm", measure_elasticapm),
}


def run_one(name):
    """In this process: measure one agent, print its figures as JSON."""
    print(json.dumps(AGENTS[name][1]()))


def available(module):
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except Exception:
        return False


def main(names):
    results = {}
    for name in names:
        if not available(AGENTS[name][0]):
            print(f"{name}: not installed, skipped")
            continue
        done = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True,
                              text=True)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            print(f"{name}: failed ({tail[0]}), skipped")
            continue
        results[name] = json.loads(lines[-1])
    if not results:
        return
    some = next(iter(results.values()))
    print(f"bare sqlite3 SELECT 1 execute+fetchall: {some['bare']:.2f} us per query; "
          f"added per query (best of {ROUNDS} x {QUERIES}, peers {PEER_ROUNDS} x "
          f"{PEER_QUERIES}; {PER_TRACE} queries per trace):")
    print(f"{'agent':<12}{'outside':>10}{'in, folded':>13}{'in, 1 span each':>18}")
    for name, figures in results.items():
        print(f"{name:<12}{figures['outside']:>8.2f}us{figures['inside_folded']:>11.2f}us"
              f"{figures['inside_unfolded']:>16.2f}us")
    if "spyglass" in results:
        figures = results["spyglass"]
        worst_inside = max(figures["inside_folded"], figures["inside_unfolded"])
        print(f"spyglass outside any trace: {figures['outside']:.2f} us (bar <= "
              f"{BAR_OUTSIDE_US}) {verdict(figures['outside'], BAR_OUTSIDE_US)}")
        print(f"spyglass inside a sampled trace, worst case: {worst_inside:.2f} us (bar <= "
              f"{BAR_INSIDE_US}) {verdict(worst_inside, BAR_INSIDE_US)}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        run_one(sys.argv[2])
    else:
        main(sys.argv[1:] or list(AGENTS))
