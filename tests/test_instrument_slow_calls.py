"""Slow-call timing, end to end through sqlite3: a call over its ``timing.<library>``
threshold is marked slow with the app's stack and kept in an unsampled trace;
``span_min_duration`` drops fast spans but not their aggregates; ``false`` switches a
library off; N+1 compression can be turned off."""
from support.calls import by_name, run_traced

SLOW_AND_FAST = """
    import sqlite3, time

    def slow_report(conn):
        return conn.execute("SELECT sleep_for(0.12)").fetchall()

    conn = sqlite3.connect(":memory:")
    conn.create_function("sleep_for", 1, time.sleep)
    for i in range(5):
        conn.execute("SELECT ?", (i,)).fetchall()
    slow_report(conn)
    print(type(conn).__module__, type(conn).__name__)
"""


def test_a_slow_call_carries_its_stack_and_is_kept_in_an_unsampled_trace(receiver):
    spans, _ = run_traced(receiver, SLOW_AND_FAST, expect_spans=2, SPYGLASS_SAMPLE_RATE="0",
                          SPYGLASS_TIMING_DBAPI2_SQLITE3="0.1")
    names = by_name(spans)
    assert sorted(names) == ["SELECT", "request"]  # the fast calls were not kept
    slow, = names["SELECT"]
    attrs = slow["attrs"]
    assert attrs["spyglass.slow"] is True
    assert attrs["db.query.text"] == "SELECT sleep_for(?)"
    stack = attrs["spyglass.stack"]
    lines = stack.strip().splitlines()
    # innermost last; the source line's literal masked (it is the app's data)
    assert "in slow_report" in lines[-2] and 'conn.execute("?").fetchall()' in lines[-1]
    assert "sleep_for(0.12)" not in stack
    assert "in <module>" in lines[0]
    assert "spyglass" not in stack.replace("traced_app_", "")  # in-app frames only
    root, = names["request"]
    assert root["attrs"]["spyglass.sampled"] is False
    assert root["attrs"]["spyglass.agg.sql.count"] == 7  # connect, 5 fast, 1 slow
    assert root["attrs"]["spyglass.agg.sql.duration_ms"] >= 120


def test_fast_calls_under_the_threshold_carry_no_stack(receiver):
    spans, _ = run_traced(receiver, SLOW_AND_FAST, expect_spans=4,
                          SPYGLASS_TIMING_DBAPI2_SQLITE3="10")
    calls = [s for s in spans if s["name"] != "request"]
    assert calls and not any("spyglass.stack" in s["attrs"] or "spyglass.slow" in s["attrs"]
                             for s in calls)


def test_span_min_duration_drops_fast_spans_but_keeps_them_in_the_aggregates(receiver):
    spans, _ = run_traced(receiver, SLOW_AND_FAST, expect_spans=2,
                          SPYGLASS_SPAN_MIN_DURATION="0.05")
    names = by_name(spans)
    assert sorted(names) == ["SELECT", "request"]
    assert names["SELECT"][0]["attrs"]["db.query.text"] == "SELECT sleep_for(?)"
    assert names["request"][0]["attrs"]["spyglass.agg.sql.count"] == 7


def test_compression_folds_repeats_unless_turned_off(receiver):
    spans, _ = run_traced(receiver, SLOW_AND_FAST, expect_spans=4)
    folded = [s for s in by_name(spans)["SELECT"] if s["attrs"]["db.query.text"] == "SELECT ?"]
    assert len(folded) == 1 and folded[0]["attrs"]["spyglass.count"] == 5
    receiver.requests.clear()
    spans, _ = run_traced(receiver, SLOW_AND_FAST, expect_spans=8,
                          SPYGLASS_COMPRESS_REPEATED_CALLS="false")
    plain = [s for s in by_name(spans)["SELECT"] if s["attrs"]["db.query.text"] == "SELECT ?"]
    assert len(plain) == 5 and not any("spyglass.count" in s["attrs"] for s in plain)


def test_timing_false_switches_the_library_off(receiver):
    spans, stdout = run_traced(receiver, SLOW_AND_FAST, expect_spans=1,
                               SPYGLASS_TIMING_DBAPI2_SQLITE3="false")
    assert stdout.split() == ["sqlite3", "Connection"]
    assert type_is_plain(stdout)
    assert [s["name"] for s in spans] == ["request"]
    assert not any(key.startswith("spyglass.agg") for key in spans[0]["attrs"])


def type_is_plain(stdout):
    return stdout.strip() == "sqlite3 Connection"
