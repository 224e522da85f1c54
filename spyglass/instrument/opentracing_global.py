"""OpenTracing's global tracer (``opentracing.tracer``, ``global_tracer()``) becomes
spyglass's, unless the app has registered one of its own: what ``set_global_tracer``
would set, patched, so that it can be undone."""
from ._patch import Patch, Supports

SUPPORTS = Supports("opentracing", "2.0", "3.0")
TIMING = None
PATCHES = (
    Patch("opentracing", tracer="spyglass_tracer", is_tracer_registered="registered"),
)


def spyglass_tracer(tracer, agent):
    import opentracing

    if opentracing.is_tracer_registered:  # the app's own
        return None
    # Building the tracer may be what imported opentracing: the agent builds it once.
    return agent.tracer


def registered(is_registered, agent):
    return None if is_registered else True
