"""Patches: ``opentracing.tracer`` (the global tracer) -> spyglass's tracer.

Only when the app has not registered a tracer of its own.
"""


def install(agent, module):
    agent.register_global_tracer()
