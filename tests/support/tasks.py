"""Shared by the task-queue tests (Celery, RQ): real brokers, real worker processes under
the sensor, and what the OTLP receiver got from each side."""
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit

from .servers import Server
from .services import require
from .web import APPS

BIN = os.path.dirname(sys.executable)
BROKERS = {
    "amqp": ("SPYGLASS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//", "RabbitMQ"),
    "redis": ("SPYGLASS_TEST_REDIS_URL", "redis://127.0.0.1:6379/11", "Redis"),
}
PRODUCER, CONSUMER = 4, 5


def broker_url(kind):
    """The broker's URL from its variable (or the default), once it answers on TCP."""
    env_var, default, what = BROKERS[kind]
    url = os.environ.get(env_var, default)
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()
        reachable = True
    except OSError:
        reachable = False
    require(reachable, f"{what} not reachable at {parts.hostname}:{parts.port} (set {env_var})")
    return url


def unique_name(prefix):
    return f"spyglass-tasks-{prefix}-{uuid.uuid4().hex[:8]}"


class Worker(Server):
    """A worker process (``celery worker``, ``rq worker``) under the sensor, run from
    tests/apps; its output goes to a file."""

    def __init__(self, argv, receiver, **env):
        env.setdefault("AUTOWRAPT_BOOTSTRAP", "runtime")
        env.setdefault("SPYGLASS_FLUSH_INTERVAL", "0.2")
        super().__init__(argv, receiver, cwd=APPS, PYTHONPATH=APPS, **env)

    def wait_for_output(self, pattern, timeout=30):
        """The first match of ``pattern`` (a regular expression) in the output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output())
            if found:
                return found
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n"
                                     f"{self.output()}")
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} in the worker's output after {timeout}s:\n"
                             f"{self.output()}")

    def ended(self, timeout):
        """Whether the process ended within ``timeout`` seconds."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True


def command(name):
    return os.path.join(BIN, name)


# -- what arrived ------------------------------------------------------------------------------

def message_spans(receiver, message_id, kind):
    """The spans of one message (task or job id) of ``kind``, earliest first."""
    found = [span for span in receiver.spans()
             if span["kind"] == kind and span["attrs"].get("messaging.message.id") == message_id]
    return sorted(found, key=lambda span: int(span["startTimeUnixNano"]))


def wait_for_runs(receiver, message_id, count=1, timeout=20, worker=None):
    """The CONSUMER spans of ``message_id`` once ``count`` of them arrived (if not, the
    assertion says what arrived, and what ``worker`` printed)."""
    runs = receiver.wait_for(lambda r: len(message_spans(r, message_id, CONSUMER)) >= count
                             and message_spans(r, message_id, CONSUMER), timeout)
    assert runs and len(runs) >= count, (
        f"{len(runs or [])} run(s) of {message_id} arrived, expected {count}: "
        f"{[(s['name'], s['kind'], s['resource']['process.pid']) for s in receiver.spans()]}"
        + (f"\nthe worker's output:\n{worker.output()}" if worker is not None else ""))
    return runs


def children(receiver, span):
    return [other for other in receiver.spans()
            if other.get("parentSpanId") == span["spanId"] and other["traceId"] == span["traceId"]]


def error_events(receiver, span):
    """The error events (OTLP log records) reported inside ``span``."""
    return [record for record in receiver.log_records()
            if record["attrs"].get("event.name") == "spyglass.error"
            and record.get("spanId") == span["spanId"]]
