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


def verdict(value, bar, lower_is_better=True):
    ok = value <= bar if lower_is_better else value >= bar
    return "ok" if ok else "OVER THE BAR"


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
