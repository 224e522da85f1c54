"""Profiles linked to traces, in real interpreters exporting to a real receiver: every body is
parsed with opentelemetry-proto and must serialize back to the same bytes (the receiver
checks it), and what a profile says is read from the parsed message."""
import textwrap

from support.processes import run_python
from support.profiles import (hottest_leaf, leaf_counts, read_profiles, span_by_name,
                              trace_profiles)

# 100 samples a second (the default is 49): counts large enough to compare.
PROFILING = dict(AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_PROFILING="true",
                 SPYGLASS_PROFILING_HZ="100", SPYGLASS_FLUSH_INTERVAL="0.2")

BUSY = textwrap.dedent("""
    import time
    import opentracing

    def spin_in_pure_python(seconds):
        end = time.monotonic() + seconds
        total = 0
        while time.monotonic() < end:
            total += sum(range(50))
        return total

    def wait_for_the_sampler():
        import sys
        deadline = time.monotonic() + 10
        while "spyglass.profile.sampler" not in sys.modules and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.1)
""")


def app(body):
    return BUSY + textwrap.dedent(body)


def test_a_slow_trace_has_a_linked_profile_its_hottest_frame_the_slow_function(receiver):
    result = run_python(app("""
        import os, threading
        wait_for_the_sampler()
        with opentracing.tracer.start_active_span("slow-request"):
            spin_in_pure_python(0.3)
            with opentracing.tracer.start_active_span("inner-step"):
                spin_in_pure_python(0.2)
        print(threading.get_ident(), os.getpid())
    """), SPYGLASS_ENDPOINT=receiver.url, **PROFILING)
    thread, pid = map(int, result.stdout.split())
    assert receiver.wait_for(lambda r: trace_profiles(r)), result.stderr
    assert receiver.schema_errors == []
    spans = span_by_name(receiver)
    outer, inner = spans["slow-request"], spans["inner-step"]
    profile, = trace_profiles(receiver)
    assert profile["root_name"] == "slow-request"
    assert profile["resource"]["process.pid"] == {"intValue": str(pid)}
    assert hottest_leaf(profile) == "spin_in_pure_python"
    assert {s["trace_id"] for s in profile["samples"]} == {outer["traceId"]}
    assert {s["thread"] for s in profile["samples"]} == {thread}
    assert {s["state"] for s in profile["samples"]} == {"running"}
    # Samples are linked to the innermost span open when taken: the 0.2 s inside
    # inner-step to it, the 0.3 s before to the request's own span.
    by_span = {}
    for sample in profile["samples"]:
        by_span[sample["span_id"]] = by_span.get(sample["span_id"], 0) + sample["count"]
        for when in sample["times"]:
            inside = int(inner["startTimeUnixNano"]) <= when <= int(inner["endTimeUnixNano"])
            assert sample["span_id"] == (inner["spanId"] if inside else outer["spanId"])
    # About 100 samples a second; fewer where the sampler waits for the GIL.
    assert 12 <= by_span[inner["spanId"]] < by_span[outer["spanId"]] <= 33, by_span
    assert "spin_in_pure_python" in profile["samples"][0]["stack"]
    assert profile["samples"][0]["stack"][-1] == "<module>"  # the outermost frame last


def test_a_head_dropped_trace_leaves_no_profile_unless_it_is_kept(receiver):
    result = run_python(app("""
        wait_for_the_sampler()
        with opentracing.tracer.start_active_span("dropped") as scope:
            spin_in_pure_python(0.2)
            print(f"{scope.span.trace_id:032x}")
        with opentracing.tracer.start_active_span("errored") as scope:
            spin_in_pure_python(0.2)
            scope.span.set_tag("error", True)
            print(f"{scope.span.trace_id:032x}")
        from spyglass.profile import registry
        # The dropped trace's samples are freed a second after its end (a loaded machine
        # may take longer to get there: waited for, up to a bound).
        deadline = time.monotonic() + 15
        while registry.buffers and time.monotonic() < deadline:
            time.sleep(0.1)
        print(len(registry.buffers))
    """), SPYGLASS_ENDPOINT=receiver.url, SPYGLASS_SAMPLE_RATE="0", **PROFILING)
    dropped, errored, buffered = result.stdout.split()
    assert receiver.wait_for(lambda r: trace_profiles(r)), result.stderr
    assert [s["name"] for s in receiver.spans()] == ["errored"]
    profile, = trace_profiles(receiver)
    assert {s["trace_id"] for s in profile["samples"]} == {errored}
    assert dropped not in receiver.raw_text()
    assert buffered == "0"


def test_a_forked_child_profiles_itself(receiver):
    result = run_python(app("""
        import os
        wait_for_the_sampler()
        pid = os.fork()
        if pid == 0:
            time.sleep(1.5)  # the reporter's tick restarts the sampler in this process
            with opentracing.tracer.start_active_span("in-child"):
                spin_in_pure_python(0.3)
            print("child", os.getpid(), flush=True)
        else:
            with opentracing.tracer.start_active_span("in-parent"):
                spin_in_pure_python(0.3)
            os.waitpid(pid, 0)
            print("parent", os.getpid(), flush=True)
    """), SPYGLASS_ENDPOINT=receiver.url, **PROFILING)
    pids = dict(line.split() for line in result.stdout.splitlines())
    assert receiver.wait_for(lambda r: len(trace_profiles(r)) >= 2), result.stderr
    by_root = {p["root_name"]: p for p in trace_profiles(receiver)}
    assert set(by_root) == {"in-child", "in-parent"}
    for name, who in (("in-child", "child"), ("in-parent", "parent")):
        assert by_root[name]["resource"]["process.pid"] == {"intValue": pids[who]}
        assert hottest_leaf(by_root[name]) == "spin_in_pure_python"
    assert receiver.schema_errors == []


def test_a_receiver_without_profiles_turns_profiling_off_with_one_log_line(receiver):
    receiver.not_found.add("/v1development/profiles")
    result = run_python(app("""
        import logging, sys, threading
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        wait_for_the_sampler()
        for name in ("first", "second", "third"):
            with opentracing.tracer.start_active_span(name):
                spin_in_pure_python(0.15)
            time.sleep(1.2)
        print(sorted(t.name for t in threading.enumerate()))
    """), SPYGLASS_ENDPOINT=receiver.url, **PROFILING)
    assert {s["name"] for s in receiver.spans()} == {"first", "second", "third"}
    refused = [line for line in result.stderr.splitlines() if "profiles" in line]
    assert len(refused) == 1 and "404" in refused[0], result.stderr
    assert "Traceback" not in result.stderr
    assert len([r for r in receiver.requests if r.path == "/v1development/profiles"]) == 1
    assert "spyglass-profiler" not in result.stdout  # the sampler stopped


def test_process_profile_counts_busy_threads_and_leaves_idle_ones_out(receiver):
    result = run_python(app("""
        import threading
        wait_for_the_sampler()
        waiting = threading.Event()
        idle = [threading.Thread(target=waiting.wait) for _ in range(4)]
        for thread in idle:
            thread.start()
        worker = threading.Thread(target=spin_in_pure_python, args=(0.5,), name="worker")
        worker.start()
        worker.join()
        waiting.set()
    """), SPYGLASS_ENDPOINT=receiver.url, **PROFILING)
    assert receiver.wait_for(lambda r: any(p["kind"] == "process" for p in read_profiles(r)))
    process = [p for p in read_profiles(receiver) if p["kind"] == "process"]
    counts = {}
    for profile in process:
        for name, count in leaf_counts(profile).items():
            counts[name] = counts.get(name, 0) + count
    # 0.5 s: fewer than 50 samples where the sampler waits for the GIL the worker holds.
    assert counts.get("spin_in_pure_python", 0) >= 20, counts
    assert "wait" not in counts, counts  # the idle threads' Condition.wait
    assert all(s["times"] == [] and s["trace_id"] == "" for p in process for s in p["samples"])
    assert receiver.schema_errors == [], result.stderr


def test_a_dozing_sampler_wakes_when_a_trace_begins_and_counts_the_periods_it_slept(receiver):
    # A wait (a stack unchanged tick after tick) lets the sampler doze, up to 16 periods apart
    # (1.6 s at 10 Hz): the trace that begins after it is sampled from its start all the same.
    result = run_python(app("""
        wait_for_the_sampler()
        def wait_in_a_sleep():
            time.sleep(3.0)
        wait_in_a_sleep()
        with opentracing.tracer.start_active_span("after-a-doze"):
            spin_in_pure_python(0.5)
    """), SPYGLASS_ENDPOINT=receiver.url, **dict(PROFILING, SPYGLASS_PROFILING_HZ="10"))
    assert receiver.wait_for(lambda r: trace_profiles(r) and any(
        p["kind"] == "process" for p in read_profiles(r))), result.stderr
    assert receiver.schema_errors == []
    span = span_by_name(receiver)["after-a-doze"]
    profile, = trace_profiles(receiver)
    first = min(when for sample in profile["samples"] for when in sample["times"])
    assert first - int(span["startTimeUnixNano"]) < 150_000_000  # not a doze later
    # 3 s at 10 Hz: 30 periods, a handful of ticks; the periods of the doze the trace cut
    # short went to no stack (the wait's ended somewhere in it).
    waited = sum(leaf_counts(p).get("wait_in_a_sleep", 0) for p in read_profiles(receiver)
                 if p["kind"] == "process")
    assert 14 <= waited <= 31, waited


def test_off_by_default_and_lazy_when_on(receiver):
    result = run_python("""
        import sys, threading, time
        import spyglass
        print("imported at start:", "spyglass.profile.sampler" in sys.modules)
        time.sleep(1.6)
        print("sampler:", any(t.name == "spyglass-profiler" for t in threading.enumerate()))
    """, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url)
    assert result.stdout.split("\n")[:2] == ["imported at start: False", "sampler: False"]
    result = run_python("""
        import sys, threading, time
        print("imported at start:", "spyglass.profile.sampler" in sys.modules)
        deadline = time.monotonic() + 10  # a second after start, later on a loaded machine
        while True:
            sampler = [t for t in threading.enumerate()  # running: its native id known
                       if t.name == "spyglass-profiler" and t.native_id is not None]
            if sampler or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        print("sampler:", bool(sampler))
        with open(f"/proc/self/task/{sampler[0].native_id}/status") as status:
            blocked = int(dict(line.split(":\\t") for line in status.read().splitlines()
                               if ":\\t" in line)["SigBlk"], 16)
        import signal
        print("blocks SIGTERM and SIGINT:",
              bool(blocked & (1 << (signal.SIGTERM - 1)) and blocked & (1 << (signal.SIGINT - 1))))
    """, SPYGLASS_ENDPOINT=receiver.url, **PROFILING)
    assert result.stdout.split("\n")[:3] == ["imported at start: False", "sampler: True",
                                             "blocks SIGTERM and SIGINT: True"], result.stderr


def test_samples_dropped_by_a_bound_are_exported_as_a_metric(receiver):
    result = run_python(app("""
        wait_for_the_sampler()
        from spyglass.profile import sampler
        sampler.MAX_SAMPLES_PER_TRACE = 3  # a long request's samples past its cap are dropped
        with opentracing.tracer.start_active_span("long-request"):
            spin_in_pure_python(0.4)
        time.sleep(1.0)  # a metrics export or two
    """), SPYGLASS_ENDPOINT=receiver.url, SPYGLASS_METRICS_INTERVAL="0.3", **PROFILING)

    def dropped(r):
        points = [p for m in r.metrics() if m["name"] == "spyglass.profiler.dropped"
                  for p in m["sum"]["dataPoints"]]
        full = [int(p["asInt"]) for p in points
                if p["attributes"] == [{"key": "reason", "value": {"stringValue": "trace_full"}}]]
        return full and max(full) > 0 and points

    points = receiver.wait_for(dropped)
    assert receiver.schema_errors == [], result.stderr
    reasons = {p["attributes"][0]["value"]["stringValue"] for p in points}
    assert reasons == {"trace_full", "buffers_full"}
    # ~0.4 s at 100 Hz, fewer where the sampler waits for the GIL; 3 kept
    assert 10 <= max(int(p["asInt"]) for p in points) <= 40
    profile, = trace_profiles(receiver)
    assert sum(sample["count"] for sample in profile["samples"]) == 3
