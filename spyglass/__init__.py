"""spyglass: a zero-code application performance sensor.

Usually started with ``AUTOWRAPT_BOOTSTRAP=runtime`` (or ``flask``, ``django``, ``fastapi``,
``spyglass``). For those who prefer code::

    import spyglass
    spyglass.init(service_name="shop", endpoint="http://collector:4318")

This module stays small and imports nothing heavy: autowrapt imports it at startup.
"""
__version__ = "0.1.0"


def init(config_file=None, **settings):
    """Start the sensor with these settings (they win over ini file and environment).
    Returns the agent, or None when disabled. Safe to call more than once."""
    from . import agent

    return agent.start(started_by="code", config_file=config_file, **settings)


def tracer():
    """spyglass's OpenTracing tracer (starting the sensor with defaults if needed)."""
    from . import agent

    running = agent.get() or agent.start(started_by="code")
    if running is None:
        import opentracing

        return opentracing.Tracer()
    return running.tracer


def flush(timeout=None) -> bool:
    """Export everything queued now; True when it all went out in time."""
    from . import agent

    running = agent.get()
    return running.reporter.flush(timeout) if running else True
