"""Patches: ``opentracing.tracer`` (the global tracer) -> spyglass's tracer.

Only when the app has not registered a tracer of its own.
"""


def install(agent, module):
    if module.is_global_tracer_registered():
        return
    module.set_global_tracer(agent.tracer)
