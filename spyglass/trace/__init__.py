"""Tracing: tracer, spans, context, ids, propagation, sampling, SQL normalization.

``suppressed`` lives here, not in ``context`` (which needs opentracing), so that the
reporter can use it without loading the tracer at startup.
"""
from contextvars import ContextVar

# True in spyglass's own threads (the reporter): instrumentation records nothing there,
# so the sensor's export requests are never traced.
suppressed: ContextVar = ContextVar("spyglass.suppressed", default=False)
