"""Cost of one metrics call on the app's thread (spyglass.metrics), measured with timeit.

The app's side only appends to a deque; the reporter thread folds the values into the
aggregates. The fold is measured too: it is what the reporter thread spends per value.

Bar (issue 6): under 1 µs per call.
"""
import os
import sys
import timeit

sys.path.insert(0, os.path.dirname(__file__))
from _util import verdict  # noqa: E402

from spyglass import config, metrics  # noqa: E402

N = 20_000
BAR_NS = 1000

CALLS = {
    "record_request": 'metrics.record_request("/users/<id>", "GET", 200, 0.012)',
    "record_db_call": 'metrics.record_db_call("postgresql", "SELECT", 0.003)',
    "record_http_client": 'metrics.record_http_client("GET", "api.example", 443, 200, None, 0.05)',
    "record_template": 'metrics.record_template("jinja2", 0.0002)',
    "counter": 'metrics.counter("orders")',
    "counter, 2 labels": 'metrics.counter("orders", 2, labels=LABELS)',
    "gauge, 2 labels": 'metrics.gauge("queue.depth", 7, labels=LABELS)',
    "histogram": 'metrics.histogram("payload", 512.0)',
    "off (sensor not running)": None,
}


def per_call_ns(statement, registry):
    """Best of 7 runs of N calls; the pending queue is emptied between runs (the reporter
    thread does that every flush_interval) so no run hits the cap."""
    namespace = {"metrics": metrics, "LABELS": {"shop": "eu", "kind": "web"}}
    best = min(timeit.repeat(statement, setup="registry.pending.clear()", number=N, repeat=7,
                             globals=dict(namespace, registry=registry)))
    return best / N * 1e9


def main():
    registry = metrics.Registry(config.load(environ={}))
    metrics._registry = registry
    results = {}
    for name, statement in CALLS.items():
        if statement is None:
            metrics._registry = None
            results[name] = per_call_ns(CALLS["record_request"], registry)
            metrics._registry = registry
        else:
            results[name] = per_call_ns(statement, registry)
    for name, ns in results.items():
        print(f"{name:28s} {ns:8.0f} ns/call   {verdict(ns, BAR_NS)} (bar {BAR_NS} ns)")
    # What the reporter thread spends per value folded.
    for _ in range(N):
        metrics.record_request("/users/<id>", "GET", 200, 0.012)
    fold = timeit.timeit(registry.fold, number=1) / N * 1e9
    print(f"{'fold on the reporter thread':28s} {fold:8.0f} ns/value")
    metrics._registry = None


if __name__ == "__main__":
    main()
