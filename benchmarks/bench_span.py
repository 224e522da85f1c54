"""Span start+finish through the OpenTracing API (2 tags, activated), against basictracer
and the OpenTelemetry SDK (through its own API) when they are installed.

Bar (DEVELOPERS.md): spyglass <= 0.5x basictracer, <= 0.1x opentelemetry-sdk. Each
exports the way it runs in production: spyglass into its reporter's bounded queue, the
SDK through its BatchSpanProcessor (also a bounded queue and a worker thread), both to a
sink; basictracer to a null recorder. The SDK's SimpleSpanProcessor is shown as well.

The tracers take turns, round after round, and each keeps its best round (see _util).
"""
import sys
import os

sys.path.insert(0, os.path.dirname(__file__))
from _util import best_per_call_interleaved, verdict  # noqa: E402

from spyglass.trace.tracer import Tracer  # noqa: E402

N = 50_000
ROUNDS = 9


def opentracing_loop(tracer, in_request=False):
    """Spans started, tagged and finished: each a trace of its own (the worst case: every
    one is a local root, handed to the reporter), or made inside an active request span
    (the usual case in an app)."""
    def spans(number):
        for _ in range(number):
            with tracer.start_active_span("op") as scope:
                span = scope.span
                span.set_tag("a", 1)
                span.set_tag("b", "x")

    def run(number):
        if not in_request:
            return spans(number)
        with tracer.start_active_span("request"):
            spans(number)
    return run


def spyglass_tracer():
    """The tracer as the agent builds it, exporting into the real reporter: its queue, and
    its thread taking batches off it, with the export itself a sink (as the SDK's batch
    processor gets a null exporter below)."""
    from spyglass.config import load
    from spyglass.report.reporter import Reporter

    import atexit

    reporter = Reporter(load(environ={}), dict)
    reporter._export = lambda kind, items, deadline: True
    atexit.unregister(reporter.at_exit)  # nothing is to be sent at the end of a benchmark
    return Tracer(export=reporter.submit_trace, export_lone_root=reporter.submit_root,
                  sample_rate=1.0)


def basic_tracer():
    try:
        from basictracer import BasicTracer
        from opentracing.scope_managers.contextvars import ContextVarsScopeManager
    except ImportError:
        return None

    class NullRecorder:
        def record_span(self, span):
            pass

    tracer = BasicTracer(recorder=NullRecorder(), scope_manager=ContextVarsScopeManager())
    return tracer


def otel_loop(processor_name):
    """The OpenTelemetry SDK through its own API, exporting to a null exporter through
    ``processor_name``: "BatchSpanProcessor", its production set-up (a bounded queue
    drained by a worker thread, what spyglass's reporter is too), or
    "SimpleSpanProcessor", which hands each span to the exporter at once (no queue)."""
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace import export
    except ImportError:
        return None

    class NullExporter(export.SpanExporter):
        def export(self, spans):
            return export.SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(getattr(export, processor_name)(NullExporter()))
    tracer = provider.get_tracer("bench")

    def run(number):
        for _ in range(number):
            with tracer.start_as_current_span("op") as span:
                span.set_attribute("a", 1)
                span.set_attribute("b", "x")
    return run


def main():
    ours = {label: spyglass_tracer() for label in ("root", "request")}
    loops = {"root": (opentracing_loop(ours["root"]), N),
             "request": (opentracing_loop(ours["request"], in_request=True), N)}
    basic = basic_tracer()
    if basic is not None:
        loops["basictracer"] = (opentracing_loop(basic), N)
    for processor in ("BatchSpanProcessor", "SimpleSpanProcessor"):
        loop = otel_loop(processor)
        if loop is not None:
            loops[processor] = (loop, N // 5)
    best = best_per_call_interleaved(loops, ROUNDS)

    for label, title in (("root", "each span a trace of its own"),
                         ("request", "spans inside a request span")):
        cost = best[label]
        print(f"spyglass, {title}: {cost * 1e6:.2f} us")
        if "basictracer" in best:
            ratio = cost / best["basictracer"]
            print(f"  vs basictracer {best['basictracer'] * 1e6:.2f} us: ratio {ratio:.2f} "
                  f"(bar <= 0.5) {verdict(ratio, 0.5)}")
        for processor in ("BatchSpanProcessor", "SimpleSpanProcessor"):
            if processor not in best:
                continue
            ratio = cost / best[processor]
            # The bar is against the SDK as it is deployed (batch); the simple processor,
            # which no production set-up uses, is shown for comparison.
            bar = f"(bar <= 0.1) {verdict(ratio, 0.1)}" if processor == "BatchSpanProcessor" \
                else "(for comparison)"
            print(f"  vs opentelemetry-sdk with {processor} {best[processor] * 1e6:.2f} us: "
                  f"ratio {ratio:.3f} {bar}")
    # A tight loop of whole traces outruns the reporter's thread, which waits for the GIL:
    # the traces the full queue turned away cost the loop less than exported ones.
    counters = ours["root"].export.__self__.counters
    handled = counters["taken"] + counters["dropped"]
    print(f"whole traces dropped by the full queue: {counters['dropped'] / handled:.0%} "
          f"of {handled:,} (counted, as in production)")
    if basic is None:
        print("basictracer not installed: skipped")
    if "BatchSpanProcessor" not in best:
        print("opentelemetry-sdk not installed: skipped")


if __name__ == "__main__":
    main()
