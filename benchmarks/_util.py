"""Shared by the benchmark scripts: best-of-N timing, and the bar check printout."""
import time


def per_call(function, number, repeat=7):
    """Best per-call seconds over ``repeat`` runs of ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function(number)
        best = min(best, (time.perf_counter() - start) / number)
    return best


def best_per_call_interleaved(loops, rounds=9, clock=time.perf_counter):
    """{name: best seconds per call}, for ``loops`` ({name: (run, calls per round)}) taking
    turns round after round, after one warm-up round. This machine's speed drifts by tens
    of percent within a minute: a ratio of figures taken minutes apart measures the drift,
    one of figures taken in turns does not. ``clock``: time.process_time counts the CPU
    of all the process's threads (a background thread's share included), not the time
    other processes took."""
    best = dict.fromkeys(loops, float("inf"))
    for round_number in range(rounds + 1):
        for name, (run, number) in loops.items():
            start = clock()
            run(number)
            elapsed = (clock() - start) / number
            if round_number:
                best[name] = min(best[name], elapsed)
    return best


def verdict(value, bar, lower_is_better=True):
    ok = value <= bar if lower_is_better else value >= bar
    return "ok" if ok else "OVER THE BAR"


def export_to_sink(agent):
    """Send what the agent's tracer finishes nowhere, as the peers below are set up to:
    traces, and the lone root spans it hands the reporter without a list."""
    agent.tracer.export = agent.tracer.export_lone_root = lambda trace: None


# The peer agents, set up to export nowhere, as ours exports to a sink in these runs.
SENTRY_WITH_SINK = (
    "import sentry_sdk\n"
    "from sentry_sdk.transport import Transport\n"
    "class Sink(Transport):\n"
    "    def capture_envelope(self, envelope):\n"
    "        pass\n"
    "sentry_sdk.init(dsn='http://key@127.0.0.1:9/1', traces_sample_rate=1.0, transport=Sink)\n"
)
# Keep the peers quiet and off the network (their exporters would try a local agent).
PEER_ENV = {"DD_TRACE_AGENT_URL": "http://127.0.0.1:9", "DD_REMOTE_CONFIGURATION_ENABLED": "false",
            "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false", "DD_TRACE_STARTUP_LOGS": "false",
            "ELASTIC_APM_CENTRAL_CONFIG": "false"}
