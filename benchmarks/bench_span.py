"""Span start+finish through the OpenTracing API (2 tags, activated), against basictracer
and the OpenTelemetry SDK (through its own API) when they are installed.

Bar (DEVELOPERS.md): spyglass <= 0.5x basictracer, <= 0.1x opentelemetry-sdk.
"""
import sys
import os

sys.path.insert(0, os.path.dirname(__file__))
from _util import per_call, verdict  # noqa: E402

from spyglass.trace.tracer import Tracer  # noqa: E402

N = 50_000


def opentracing_loop(tracer):
    def run(number):
        for _ in range(number):
            with tracer.start_active_span("op") as scope:
                span = scope.span
                span.set_tag("a", 1)
                span.set_tag("b", "x")
    return run


def spyglass_tracer():
    # Spans go to a real Reporter-like sink that keeps nothing, as with a fast collector.
    return Tracer(export=lambda spans: None, sample_rate=1.0)


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


def otel_loop():
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
    except ImportError:
        return None

    class NullExporter(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(NullExporter()))
    tracer = provider.get_tracer("bench")

    def run(number):
        for _ in range(number):
            with tracer.start_as_current_span("op") as span:
                span.set_attribute("a", 1)
                span.set_attribute("b", "x")
    return run


def main():
    ours = per_call(opentracing_loop(spyglass_tracer()), N)
    print(f"spyglass span start+finish, 2 tags, activated: {ours * 1e6:.2f} us")
    basic = basic_tracer()
    if basic is not None:
        theirs = per_call(opentracing_loop(basic), N)
        ratio = ours / theirs
        print(f"basictracer: {theirs * 1e6:.2f} us  -> ratio {ratio:.2f} (bar <= 0.5) {verdict(ratio, 0.5)}")
    else:
        print("basictracer not installed: skipped")
    otel = otel_loop()
    if otel is not None:
        theirs = per_call(otel, N // 5)
        ratio = ours / theirs
        print(f"opentelemetry-sdk: {theirs * 1e6:.2f} us  -> ratio {ratio:.3f} (bar <= 0.1) {verdict(ratio, 0.1)}")
    else:
        print("opentelemetry-sdk not installed: skipped")


if __name__ == "__main__":
    main()
