"""The services the tests run against (PostgreSQL, MariaDB, Redis, …): each test reads an
address from an environment variable with a default, and skips with a reason when the
service is unreachable, or fails instead when SPYGLASS_REQUIRE_SERVICES=1 (CI)."""
import os
import shutil
import socket
import subprocess
import time

import pytest

REQUIRE_SERVICES = os.environ.get("SPYGLASS_REQUIRE_SERVICES") == "1"

POSTGRES = ("SPYGLASS_TEST_POSTGRES", "127.0.0.1:5432", "PostgreSQL")
MYSQL = ("SPYGLASS_TEST_MYSQL", "127.0.0.1:3306", "MariaDB/MySQL")
REDIS = ("SPYGLASS_TEST_REDIS", "127.0.0.1:6379", "Redis")
RABBITMQ = ("SPYGLASS_TEST_RABBITMQ", "127.0.0.1:5672", "RabbitMQ")
MQTT = ("SPYGLASS_TEST_MQTT", "127.0.0.1:1883", "an MQTT broker (Mosquitto)")
NATS = ("SPYGLASS_TEST_NATS", "127.0.0.1:4222", "NATS")
MEMCACHED = ("SPYGLASS_TEST_MEMCACHED", "127.0.0.1:11211", "memcached")


def require(condition, reason):
    """Skip with ``reason`` unless the run demands every service (then fail)."""
    if condition:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (SPYGLASS_REQUIRE_SERVICES=1 forbids skipping)")
    pytest.skip(reason)


def require_installed(module):
    """Skip (or fail) unless ``module`` can be imported; it is not imported here: the test
    process stays as it was (the config derives a service name from gunicorn's presence)."""
    import importlib.util

    require(importlib.util.find_spec(module) is not None, f"{module} is not installed")


def require_tcp(env_var, default, what):
    address = os.environ.get(env_var, default)
    host, _, port = address.rpartition(":")
    require(reachable(host, int(port)), f"{what} not reachable at {address} (set {env_var})")
    return host, int(port)


def reachable(host, port, timeout=2):
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def started_memcached():
    """A memcached to test against, and the process started for it (or None): the one at
    SPYGLASS_TEST_MEMCACHED (default 127.0.0.1:11211) when it answers, else Debian's
    ``memcached`` (scripts/setup installs it) started on a free loopback port."""
    env_var, default, what = MEMCACHED
    address = os.environ.get(env_var, default)
    host, _, port = address.rpartition(":")
    if reachable(host, int(port)):
        return (host, int(port)), None
    binary = shutil.which("memcached") or shutil.which("memcached", path="/usr/bin")
    require(binary is not None, f"{what} not reachable at {address} (set {env_var}) and no "
                                f"memcached binary to start (scripts/setup installs it)")
    port = free_port()
    # -u root: memcached refuses to run as root without it (and ignores it otherwise)
    process = subprocess.Popen([binary, "-p", str(port), "-l", "127.0.0.1", "-U", "0",
                                "-u", "root", "-m", "16"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not reachable("127.0.0.1", port, timeout=0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            require(False, f"{what}: {binary} did not start on port {port}")
        time.sleep(0.05)
    return ("127.0.0.1", port), process


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_dsn():
    host, port = require_tcp(*POSTGRES)
    user = os.environ.get("SPYGLASS_TEST_POSTGRES_USER", "postgres")
    return dict(host=host, port=port, user=user, dbname="test")


def mysql_params():
    host, port = require_tcp(*MYSQL)
    return dict(host=host, port=port, user=os.environ.get("SPYGLASS_TEST_MYSQL_USER", "root"),
                password=os.environ.get("SPYGLASS_TEST_MYSQL_PASSWORD", ""), database="test")


def redis_address():
    return require_tcp(*REDIS)
