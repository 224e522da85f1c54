import os
import socket
import subprocess
import sys
import textwrap

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from otlp_receiver import OTLPReceiver  # noqa: E402

REQUIRE_SERVICES = os.environ.get("SPYGLASS_REQUIRE_SERVICES") == "1"


def require(condition, reason):
    """Skip with ``reason`` unless the run demands every service (then fail)."""
    if condition:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (SPYGLASS_REQUIRE_SERVICES=1 forbids skipping)")
    pytest.skip(reason)


def require_tcp(env_var, default, what):
    address = os.environ.get(env_var, default)
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        reachable = True
    except OSError:
        reachable = False
    require(reachable, f"{what} not reachable at {address} (set {env_var})")
    return host, int(port)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def receiver():
    server = OTLPReceiver().start()
    yield server
    server.stop()


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
