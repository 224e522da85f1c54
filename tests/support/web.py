"""Shared by the web framework tests: run a driver script against an app under
AUTOWRAPT_BOOTSTRAP, collect what a real OTLP receiver got."""
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

from .otlp_receiver import OTLPReceiver
from .processes import clean_env

APPS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "apps")


class Run:
    """One driver run: its printed output (JSON lines) and what the receiver got."""

    def __init__(self, receiver, result):
        self.receiver = receiver
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.outputs = [json.loads(line) for line in result.stdout.splitlines()
                        if line.startswith("{")]

    def spans(self):
        return self.receiver.spans()

    def span(self, name):
        found = [span for span in self.spans() if span["name"] == name]
        assert found, f"no span {name!r} in {[s['name'] for s in self.spans()]}"
        return found[0]

    def server_spans(self):
        """The SERVER spans, by name (the last of a name)."""
        return {span["name"]: span for span in self.spans() if span["kind"] == 2}

    def errors(self):
        return [json.loads(record["body"]["stringValue"]) | {"_attrs": record["attrs"],
                                                              "_record": record}
                for record in self.receiver.log_records()
                if record["attrs"].get("event.name") == "spyglass.error"]

    def logs(self):
        return [record for record in self.receiver.log_records()
                if record["attrs"].get("event.name") is None]


def server_span_at(spans, path, method="GET"):
    """The one SERVER span of the request ``method path`` among ``spans``."""
    found = [span for span in spans if span["kind"] == 2 and span["attrs"].get("url.path") == path
             and span["attrs"].get("http.request.method") == method]
    assert len(found) == 1, f"{len(found)} SERVER spans of {method} {path}"
    return found[0]


def assert_no_route(spans, path, status, method="GET"):
    """The request ``method path``, which no route matched, answered ``status``: its span
    is named by the method alone and has no ``http.route``, as OpenTelemetry's are."""
    span = server_span_at(spans, path, method)
    assert span["name"] == method, span["name"]
    assert "http.route" not in span["attrs"], span["attrs"]["http.route"]
    assert span["attrs"]["http.response.status_code"] == status
    return span


def drive(code, bootstrap="flask", receiver=None, timeout=60, **env):
    """Run ``code`` (with tests/apps on the path) under the sensor; flush at its end."""
    own = receiver is None
    receiver = receiver or OTLPReceiver().start()
    script = textwrap.dedent(code)
    env = dict(PYTHONPATH=APPS, **env)
    if bootstrap:
        script += "\nimport spyglass\nassert spyglass.flush(10)\n"
        env = dict(AUTOWRAPT_BOOTSTRAP=bootstrap, SPYGLASS_ENDPOINT=receiver.url,
                   SPYGLASS_METRICS_INTERVAL="0", **env)
    # From a file, not -c: the command line is exported (process.command_args).
    with tempfile.NamedTemporaryFile("w", suffix="_driver.py", delete=False) as handle:
        handle.write(script)
    try:
        result = subprocess.run([sys.executable, "-W", "error", handle.name], env=clean_env(**env),
                                capture_output=True, text=True, timeout=timeout)
    finally:
        os.unlink(handle.name)
    if result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\nstdout:\n{result.stdout}\n"
                             f"stderr:\n{result.stderr}")
    run = Run(receiver, result)
    if own:
        receiver.stop()
    return run


def wait_for_port(port, timeout=15.0, path="/health"):
    """Until the server answers a real request (a bare connect can precede readiness)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError(f"nothing answering on port {port}")


def echoed_as_plain(run, plain):
    """The driver's ``echoed.show`` lines by (name, inside), once checked equal to the plain
    run's but for the trace headers."""
    sent = [o for o in run.outputs if "sent" in o]
    assert [{k: v for k, v in o.items() if k != "trace"} for o in sent] == [
        {k: v for k, v in o.items() if k != "trace"} for o in plain.outputs if "sent" in o]
    return {(o["name"], o["inside"]): o for o in sent}


def serve(receiver, argv, bootstrap="spyglass", **env):
    """A server process (``argv``, ``{port}`` replaced by a free port, run in tests/apps)
    under the sensor, exporting to ``receiver``, once it answers; (process, base URL). Its
    output (stdout and stderr) is the process's ``communicate()``'s."""
    from .services import free_port

    port = free_port()
    process = subprocess.Popen(
        [arg.replace("{port}", str(port)) for arg in argv], cwd=APPS,
        env=clean_env(AUTOWRAPT_BOOTSTRAP=bootstrap, SPYGLASS_ENDPOINT=receiver.url,
                      SPYGLASS_FLUSH_INTERVAL="0.2", SPYGLASS_METRICS_INTERVAL="0",
                      SPYGLASS_IGNORE_PATHS="/health", PORT=port, **env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port)
    except AssertionError:
        process.kill()
        raise AssertionError(process.communicate(timeout=10)[0])
    return process, f"http://127.0.0.1:{port}"
