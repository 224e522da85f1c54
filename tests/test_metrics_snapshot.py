"""The process snapshot: one log record shortly after start, another when it changes."""
import json

from support.processes import run_python


def snapshots(receiver):
    return [json.loads(record["body"]["stringValue"]) for record in receiver.log_records()
            if record["attrs"].get("event.name") == "spyglass.process.snapshot"]


def test_snapshot_at_start_and_again_when_instrumentations_change(receiver):
    result = run_python("""
        import os, time
        time.sleep(1.5)          # the first snapshot goes out a second after start
        import sqlite3           # a new instrumentation: a new snapshot
        time.sleep(1.5)
        print(os.getpid())
    """, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url,
        SPYGLASS_METRICS_INTERVAL="1", SPYGLASS_SERVICE_NAME="shop")
    first, second = snapshots(receiver)
    assert first["service.name"] == "shop"
    assert first["process.pid"] == int(result.stdout.split()[-1])
    assert first["python.implementation"] == "cpython" and first["python.version"].startswith("3.")
    assert first["started_by"] == ["autowrapt:runtime"]
    assert first["distributions"]["wrapt"] and first["distributions"]["spyglass"]
    assert "sqlite3" not in first["instrumentations"]
    assert "sqlite3" in second["instrumentations"]
    record = [r for r in receiver.log_records()
              if r["attrs"].get("event.name") == "spyglass.process.snapshot"][0]
    assert record["resource"]["process.pid"] == first["process.pid"]
    assert receiver.schema_errors == []


def test_a_short_lived_process_sends_no_snapshot(receiver):
    run_python("pass", AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url)
    assert receiver.requests == []
