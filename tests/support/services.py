"""The services the tests run against (PostgreSQL, MariaDB, Redis, …): each test reads an
address from an environment variable with a default, and skips with a reason when the
service is unreachable, or fails instead when SPYGLASS_REQUIRE_SERVICES=1 (CI)."""
import os
import socket

import pytest

REQUIRE_SERVICES = os.environ.get("SPYGLASS_REQUIRE_SERVICES") == "1"

POSTGRES = ("SPYGLASS_TEST_POSTGRES", "127.0.0.1:5432", "PostgreSQL")
MYSQL = ("SPYGLASS_TEST_MYSQL", "127.0.0.1:3306", "MariaDB/MySQL")
REDIS = ("SPYGLASS_TEST_REDIS", "127.0.0.1:6379", "Redis")
RABBITMQ = ("SPYGLASS_TEST_RABBITMQ", "127.0.0.1:5672", "RabbitMQ")
MQTT = ("SPYGLASS_TEST_MQTT", "127.0.0.1:1883", "an MQTT broker (Mosquitto)")
NATS = ("SPYGLASS_TEST_NATS", "127.0.0.1:4222", "NATS")


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
