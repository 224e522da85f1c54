"""Tracing: tracer, spans, context, propagation, sampling.

opentracing is imported here, before any module of this package: its import fires
spyglass's opentracing hook, which builds the tracer from these very modules, so it must
fire while none of them is half-loaded. (Process-wide state the reporter needs at startup,
without opentracing, is in ``spyglass.process``.)
"""
import opentracing  # noqa: F401
