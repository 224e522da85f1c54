"""pymemcache and python-memcached against a real memcached (the one at
SPYGLASS_TEST_MEMCACHED, else Debian's started for the session), end to end under
AUTOWRAPT_BOOTSTRAP with a real OTLP receiver: a CLIENT span per command, named by it,
with the command and a count of keys, never a key or a value; the app sees what it sees
without the sensor; ``timing.memcache`` marks slow commands and ``false`` switches both off."""
import pytest

from support.calls import CLIENT_KIND, by_name, run_traced
from support.processes import run_python

PYMEMCACHE = """
import pymemcache
from pymemcache.client.base import Client, PooledClient
from pymemcache.exceptions import MemcacheIllegalInputError

client = Client(({host!r}, {port}))
print(client.set("libs-data:key-hunter2", b"value-hunter2"))
print(client.get("libs-data:key-hunter2"), client.get("libs-data:absent"))
print(client.set_many({{"libs-data:a": b"1", "libs-data:b": b"2"}}))
print(sorted(client.get_many(["libs-data:a", "libs-data:b", "libs-data:c"]).items()))
print(client.incr("libs-data:a", 5), client.delete_multi(["libs-data:a", "libs-data:b"]))
for _ in range(3):
    client.get("libs-data:n+1")  # a loop of identical calls: one span with a count
try:
    client.set("key with spaces-hunter2", b"x")
except MemcacheIllegalInputError as error:
    print("raised", type(error).__name__)
pooled = PooledClient(({host!r}, {port}))
print(pooled.get("libs-data:key-hunter2"), isinstance(client, Client),
      type(client).__module__)
client.delete("libs-data:key-hunter2")
"""

PYTHON_MEMCACHED = """
import memcache

client = memcache.Client(["{host}:{port}"])
print(client.set("libs-data:pm-hunter2", "value-hunter2"))
print(client.get("libs-data:pm-hunter2"), client.get("libs-data:pm-absent"))
print(client.set_multi({{"pm-a": 1, "pm-b": 2}}, key_prefix="libs-data:"))
print(sorted(client.get_multi(["pm-a", "pm-b"], key_prefix="libs-data:").items()))
print(client.incr("libs-data:pm-a"), client.delete("libs-data:pm-hunter2"),
      client.delete_multi(["pm-a", "pm-b"], key_prefix="libs-data:"))
try:
    client.set("key with spaces-hunter2", "x")
except memcache.Client.MemcachedKeyCharacterError as error:
    print("raised", type(error).__name__)
print(isinstance(client, memcache.Client))
"""


def run_both_ways(receiver, program, expect_spans, **env):
    plain = run_python(program).stdout
    spans, traced = run_traced(receiver, program, expect_spans=expect_spans, **env)
    assert traced == plain
    return [s for s in spans if s["kind"] == CLIENT_KIND]


def test_pymemcache_commands_and_never_a_key_or_value(receiver, memcached):
    pytest.importorskip("pymemcache")
    host, port = memcached
    calls = run_both_ways(receiver, PYMEMCACHE.format(host=host, port=port), 11)
    assert [s["name"] for s in calls] == [
        "set", "get", "set_many", "get_many", "incr", "delete_many", "get", "set", "get",
        "delete"]
    for span in calls:
        attrs = span["attrs"]
        assert attrs["db.system"] == "memcached" and attrs["spyglass.category"] == "nosql"
        assert attrs["server.address"] == host and attrs["server.port"] == port
        assert attrs["db.operation.name"] == span["name"]
    names = by_name(calls)
    assert names["set"][0]["attrs"]["db.query.text"] == "set ?"
    assert names["get_many"][0]["attrs"]["db.query.text"] == "get_many"
    assert names["get_many"][0]["attrs"]["db.operation.batch.size"] == 3
    assert names["delete_many"][0]["attrs"]["db.operation.batch.size"] == 2
    assert [s["attrs"].get("spyglass.count") for s in names["get"]] == [2, 3, None]
    failed = names["set"][1]
    assert failed["status"] == {"code": 2, "message": "pymemcache.exceptions."
                                                     "MemcacheIllegalInputError"}
    event, = failed["events"]
    assert "MemcacheIllegalInputError" in str(event)  # the type, and never the key
    assert "hunter2" not in receiver.raw_text() and "libs-data:" not in receiver.raw_text()


def test_python_memcached_commands_and_never_a_key_or_value(receiver, memcached):
    pytest.importorskip("memcache")
    host, port = memcached
    calls = run_both_ways(receiver, PYTHON_MEMCACHED.format(host=host, port=port), 9)
    assert [s["name"] for s in calls] == [
        "set", "get", "set_multi", "get_multi", "incr", "delete", "delete_multi", "set"]
    for span in calls:
        attrs = span["attrs"]
        assert attrs["db.system"] == "memcached"
        assert attrs["server.address"] == host and attrs["server.port"] == port
    names = by_name(calls)
    assert names["get"][0]["attrs"]["spyglass.count"] == 2
    assert names["set_multi"][0]["attrs"]["db.operation.batch.size"] == 2
    assert names["set"][1]["status"]["code"] == 2
    assert "hunter2" not in receiver.raw_text() and "libs-data:" not in receiver.raw_text()


def test_timing_memcache_marks_slow_commands_and_false_switches_both_off(receiver,
                                                                         memcached):
    pytest.importorskip("pymemcache")
    host, port = memcached
    program = f"""
        import memcache
        from pymemcache.client.base import Client
        Client(({host!r}, {port})).get("libs-data:slow")
        memcache.Client(["{host}:{port}"]).get("libs-data:slow")
    """
    spans, _ = run_traced(receiver, program, expect_spans=3, SPYGLASS_TIMING_MEMCACHE="0")
    gets = by_name(spans)["get"]
    assert len(gets) == 2 and all(s["attrs"]["spyglass.slow"] is True for s in gets)
    receiver.requests.clear()
    spans, _ = run_traced(receiver, program, expect_spans=1, SPYGLASS_TIMING_MEMCACHE="false")
    assert [s["name"] for s in spans] == ["request"]
