"""redis-py against the real Redis: a span per command and per pipeline, sync and asyncio;
command names and key counts only, never a value."""
import asyncio

import pytest

from support.calls import instrumented, request_span, run_traced
from support.services import redis_address

redis = pytest.importorskip("redis")
instrumented("redis")
import redis.asyncio  # noqa: E402


@pytest.fixture
def address():
    return redis_address()


def test_commands_and_pipelines(address, exported):
    host, port = address
    client = redis.Redis(host=host, port=port, db=0)
    with request_span():
        client.set("spyglass:test:key", "value-hunter2")
        assert client.get("spyglass:test:key") == b"value-hunter2"
        with client.pipeline() as pipe:
            pipe.incr("spyglass:test:n").delete("spyglass:test:key", "spyglass:test:n")
            assert pipe.execute() == [1, 2]
        with pytest.raises(redis.ResponseError):
            client.execute_command("NOSUCHCOMMAND", "x")
    calls = exported.calls()
    assert [s.name for s in calls] == ["SET", "GET", "PIPELINE", "NOSUCHCOMMAND"]
    set_span = calls[0].attributes
    assert set_span["db.system"] == "redis" and set_span["db.query.text"] == "SET ? ?"
    assert set_span["server.address"] == host and set_span["db.namespace"] == "0"
    assert set_span["spyglass.category"] == "nosql"
    pipeline = calls[2].attributes
    assert pipeline["db.query.text"] == "INCRBY DEL" or pipeline["db.query.text"] == "INCR DEL"
    assert pipeline["db.operation.batch.size"] == 2
    assert calls[3].status == 2
    assert not any("hunter2" in str(s.attributes) for s in calls)


def test_a_command_given_as_bytes_is_named_by_its_name(address, exported):
    host, port = address
    client = redis.Redis(host=host, port=port)
    with request_span():
        client.execute_command(b"SET", "spyglass:test:b", "secret-value")
        with client.pipeline() as pipe:
            pipe.execute_command(b"DEL", "spyglass:test:b")
            pipe.execute()
    calls = exported.calls()
    assert [s.name for s in calls] == ["SET", "PIPELINE"]
    assert calls[0].attributes["db.query.text"] == "SET ? ?"
    assert calls[1].attributes["db.query.text"] == "DEL"


def test_asyncio_client(address, exported):
    host, port = address

    async def work():
        client = redis.asyncio.Redis(host=host, port=port)
        await client.set("spyglass:test:a", "1")
        async with client.pipeline() as pipe:
            await pipe.get("spyglass:test:a").delete("spyglass:test:a").execute()
        await client.aclose()

    with request_span():
        asyncio.run(work())
    assert [s.name for s in exported.calls()] == ["SET", "PIPELINE"]


def test_end_to_end_no_value_leaves_the_process(receiver, address):
    host, port = address
    spans, _ = run_traced(receiver, f"""
        import redis
        client = redis.Redis(host={host!r}, port={port})
        client.set("spyglass:e2e", "redis-secret-value")
        client.get("spyglass:e2e")
        client.delete("spyglass:e2e")
    """, expect_spans=4)
    assert {"SET", "GET", "DEL"} <= {s["name"] for s in spans}
    assert "redis-secret-value" not in receiver.raw_text()
