"""Fresh interpreters of this virtualenv, with the environment a test gives them and none
of the test run's own spyglass, OpenTelemetry or autowrapt settings."""
import os
import subprocess
import sys
import textwrap


def clean_env(**extra):
    """The test process's environment without any spyglass/OTEL/autowrapt settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SPYGLASS_", "OTEL_", "AUTOWRAPT_"))}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_python(code, timeout=60, check=True, **env):
    """Run ``code`` in a fresh interpreter of this venv with ``env`` added."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=clean_env(**env),
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\nstdout:\n{result.stdout}\n"
                             f"stderr:\n{result.stderr}")
    return result


# A program's first lines: ``trace(name, children=1)`` makes a trace through OpenTracing.
TRACE_FUNCTION = textwrap.dedent("""
    import opentracing
    def trace(name, children=1):
        with opentracing.tracer.start_active_span(name) as scope:
            for i in range(children):
                with opentracing.tracer.start_active_span(name + '.child'):
                    pass
            return scope.span
""")


def app(body):
    """A program: ``body`` after the definition of ``trace(name, children)``."""
    return TRACE_FUNCTION + textwrap.dedent(body)
