"""Shared by the call-instrumentation tests (databases, Redis, Solr, HTTP, templates).

In-process tests instrument a library with ``instrumented(name)`` under a ``TestAgent``
whose tracer exports into a list (the ``exported`` fixture), to look at the Span objects
themselves. What depends on settings (thresholds, span_min_duration, compression) and
everything shown end to end runs in a fresh interpreter under AUTOWRAPT_BOOTSTRAP with
``run_traced`` and the real OTLP receiver.
"""
import subprocess
import sys
import tempfile
import textwrap

from .processes import clean_env


class Exported:
    """The test agent's exporter: keeps every span exported."""

    def __init__(self):
        self.spans = []

    def __call__(self, spans):
        self.spans.extend(spans)

    def clear(self):
        self.spans.clear()

    def calls(self):
        return [span for span in self.spans if "spyglass.category" in span.attributes]

    def named(self, name):
        return [span for span in self.spans if span.name == name]


class TestAgent:
    """What ``install(agent, module)`` needs, without the reporter thread or any other
    library's hooks: the tests in this process stay untouched by the rest of the sensor."""

    def __init__(self):
        from spyglass import config
        from spyglass.trace.tracer import Tracer

        self.config = config.load(environ={}, service_name="tests")
        self.tracer = Tracer(export=exported_spans)
        self.instrumented = []
        self._scrubber = None

    @property
    def scrubber(self):
        from spyglass.agent import Agent

        return Agent.scrubber.fget(self)  # the real agent's: one Scrubber of its settings


exported_spans = Exported()  # what the ``exported`` fixture gives
_agent = None


def agent():
    global _agent
    if _agent is None:
        _agent = TestAgent()
    return _agent


def instrumented(name):
    """Import ``name`` (a library, or a module the registry names) and instrument it in this
    process, as its import hooks would; returns the module."""
    import importlib

    from spyglass.instrument import REGISTRY, install

    running = agent()
    instrumentation = REGISTRY.get(name, name)
    for module_name, patched_by in REGISTRY.items():
        if patched_by == instrumentation:
            install(running, importlib.import_module(module_name), instrumentation)
    assert instrumentation in running.instrumented, f"{name} was not instrumented"
    return importlib.import_module(name)


def request_span(name="request"):
    """An active local root, as a web framework's middleware would open it."""
    return agent().tracer.start_active_span(name)


# -- end to end: a fresh interpreter under AUTOWRAPT_BOOTSTRAP=spyglass ---------------------

TRACED_PROGRAM = """
import spyglass
tracer = spyglass.tracer()
with tracer.start_active_span("request"):
{body}
"""


def run_traced(receiver, body, expect_spans=1, **env):
    """Run ``body`` (code, any indentation) inside an active span in a fresh interpreter
    that exports to ``receiver``; returns (spans received, the process's stdout).

    The program runs from a file, not ``-c``: the command line is exported as a resource
    attribute, and the literals a test looks for must not be there."""
    code = TRACED_PROGRAM.format(body=textwrap.indent(textwrap.dedent(body), "    "))
    settings = dict(AUTOWRAPT_BOOTSTRAP="spyglass", SPYGLASS_ENDPOINT=receiver.url,
                    SPYGLASS_SERVICE_NAME="tests", SPYGLASS_METRICS_INTERVAL="0")
    settings.update(env)
    with tempfile.NamedTemporaryFile("w", suffix=".py", prefix="traced_app_") as program:
        program.write(code)
        program.flush()
        result = subprocess.run([sys.executable, program.name], env=clean_env(**settings),
                                capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\nstdout:\n{result.stdout}\n"
                             f"stderr:\n{result.stderr}")
    spans = receiver.wait_for(lambda r: len(r.spans()) >= expect_spans and r.spans())
    assert receiver.schema_errors == []
    return spans or [], result.stdout


def by_name(spans):
    found = {}
    for span in spans:
        found.setdefault(span["name"], []).append(span)
    return found


CLIENT_KIND = 3  # OTLP SPAN_KIND_CLIENT, as spyglass encodes it (JSON number)
