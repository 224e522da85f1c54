"""The reporter against a real receiver: forks, outages, throttling, exit and SIGTERM,
bounded memory. Each app runs as its own interpreter under AUTOWRAPT_BOOTSTRAP=runtime."""
import json
import mmap
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from support.processes import TRACE_FUNCTION, app, clean_env, run_python
from support.services import free_port
from support.otlp_receiver import OTLPReceiver

def names(receiver):
    return sorted(span["name"] for span in receiver.spans())


def test_os_fork_child_exports_its_own_spans_with_its_own_pid(receiver):
    result = run_python(app("""
        import os
        trace("parent-before")
        pid = os.fork()
        if pid == 0:
            span = trace("child")
            print("child", os.getpid(), f"{span.context.trace_id:032x}", flush=True)
        else:
            span = trace("parent")
            os.waitpid(pid, 0)
            print("parent", os.getpid(), f"{span.context.trace_id:032x}", flush=True)
    """), AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url)
    lines = dict((l.split()[0], l.split()[1:]) for l in result.stdout.splitlines())
    receiver.wait_for(lambda r: len(r.spans()) >= 6)
    by_name = {s["name"]: s for s in receiver.spans()}
    assert set(by_name) >= {"parent-before", "child", "parent"}
    assert by_name["child"]["resource"]["process.pid"] == int(lines["child"][0])
    assert by_name["parent"]["resource"]["process.pid"] == int(lines["parent"][0])
    assert lines["child"][1] != lines["parent"][1]
    assert len(receiver.spans()) == 6  # nothing the parent queued is sent twice by the child
    assert receiver.schema_errors == []


def test_children_forked_while_the_reporter_first_imports_httpx_all_export(receiver):
    """A master tracing on one thread forks workers while its reporter thread makes its
    first export (importing httpx and building the transport): the forks do not wait for
    that, and every child, whatever moment of the import it was forked at, exports."""
    result = run_python(app("""
        import os, threading, time
        def load():
            while True:
                trace("load", 50)
        threading.Thread(target=load, daemon=True).start()
        children = []
        for i in range(12):
            time.sleep(0.02)
            pid = os.fork()
            if pid == 0:
                trace(f"child-{i}")
                os._exit(0 if spyglass.flush(10) else 3)
            children.append(pid)
        print([os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children])
    """).replace("import opentracing", "import opentracing, spyglass"),
        AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url)
    assert result.stdout.splitlines()[-1] == str([0] * 12), result
    receiver.wait_for(lambda r: sum(n.startswith("child-") for n in names(r)) >= 24)
    assert {n for n in names(receiver) if n.startswith("child-")} == {
        f"child-{i}{suffix}" for i in range(12) for suffix in ("", ".child")}
    assert receiver.schema_errors == []


# Where the kernel cannot wipe a page on fork, the pid is compared instead.
PID_COMPARISON = """
    from spyglass import process
    from spyglass.trace import tracer
    process.fork_marker = tracer._fork_marker = process._PidComparison()
"""


@pytest.mark.parametrize("marker", ["page wiped on fork", "pid comparison"])
def test_fork_in_c_without_at_fork_hooks_restarts_reporter_and_reseeds_ids(receiver, marker):
    # libc's fork() directly, as uWSGI does: Python's at-fork hooks never run.
    setup = textwrap.dedent(PID_COMPARISON) if marker == "pid comparison" else ""
    result = run_python(setup + app("""
        import ctypes, os, sys
        libc = ctypes.CDLL(None, use_errno=True)
        pid = libc.fork()
        if pid == 0:
            span = trace("c-child")
            print("c-child", os.getpid(), f"{span.context.trace_id:032x}", flush=True)
            sys.exit(0)   # normal exit: atexit must drain the child's fresh queue
        span = trace("c-parent")
        os.waitpid(pid, 0)
        print("c-parent", os.getpid(), f"{span.context.trace_id:032x}", flush=True)
    """), AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url)
    lines = dict((l.split()[0], l.split()[1:]) for l in result.stdout.splitlines())
    spans = receiver.wait_for(lambda r: len(r.spans()) >= 4 and r.spans())
    by_name = {s["name"]: s for s in spans}
    assert by_name["c-child"]["resource"]["process.pid"] == int(lines["c-child"][0])
    assert by_name["c-parent"]["resource"]["process.pid"] == int(lines["c-parent"][0])
    # Same generator state before the fork; the child re-seeded, so the ids differ.
    assert lines["c-child"][1] != lines["c-parent"][1]


@pytest.mark.skipif(sys.platform != "linux", reason="MADV_WIPEONFORK is Linux's")
def test_fork_detection_reads_a_page_on_linux_not_the_pid():
    from spyglass import process

    assert isinstance(process.fork_marker, mmap.mmap)
    assert process.fork_marker[0] == 1


def test_endpoint_down_then_up_resumes_and_logs_each_once():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", app("""
        import logging, time, sys
        logging.basicConfig()  # the app's logging shows the sensor's changes of state
        for i in range(40):
            trace(f"t{i}")
            time.sleep(0.1)
        print("done", flush=True)
    """)], env=clean_env(AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=f"http://127.0.0.1:{port}",
                         SPYGLASS_FLUSH_INTERVAL="0.2", SPYGLASS_METRICS_INTERVAL="0"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The endpoint comes up once the app has met it down (however long its start took under
    # load): the one outage this test is about, logged once each way.
    first_line = _line_within(proc.stderr, 30)
    receiver = OTLPReceiver(port=port).start()
    try:
        out, err = proc.communicate(timeout=60)
        err = first_line + err
        assert proc.returncode == 0, err
        got = receiver.wait_for(lambda r: {s["name"] for s in r.spans()} >= {"t39"})
        assert got
        assert "cannot export" in first_line, err
        assert err.count("cannot export") == 1, err
        assert err.count("works again") == 1, err
        assert receiver.schema_errors == []
    finally:
        receiver.stop()


def _line_within(stream, seconds):
    """The next line of a process's ``stream``, or "" when none comes in time."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        return stream.readline() if selector.select(seconds) else ""


def test_429_with_retry_after_is_honoured_and_nothing_is_duplicated(receiver):
    receiver.respond_next(429, {"Retry-After": "1"})
    run_python(TRACE_FUNCTION + "trace('throttled', children=2)\n", AUTOWRAPT_BOOTSTRAP="runtime",
               SPYGLASS_ENDPOINT=receiver.url)
    assert names(receiver) == ["throttled", "throttled.child", "throttled.child"]
    first, second = receiver.requests[0], receiver.requests[1]
    assert first.payload is None and second.payload is not None
    assert second.arrived - first.arrived >= 0.95


def test_503_is_retried_with_backoff(receiver):
    receiver.respond_next(503, times=2)
    run_python(TRACE_FUNCTION + "trace('retried')\n", AUTOWRAPT_BOOTSTRAP="runtime",
               SPYGLASS_ENDPOINT=receiver.url)
    assert names(receiver) == ["retried", "retried.child"]
    assert len(receiver.requests) == 3


def test_401_is_not_retried_and_says_what_to_check(receiver):
    receiver.respond_next(401)
    result = run_python("import logging; logging.basicConfig()\n" + TRACE_FUNCTION + "trace('refused')\n",
                        AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url)
    assert len(receiver.requests) == 1
    assert "401" in result.stderr and "API key" in result.stderr


def test_sigterm_drains_the_queue_then_dies_of_sigterm(receiver):
    with subprocess.Popen([sys.executable, "-c", app("""
        import time
        trace("before-sigterm", children=3)
        print("ready", flush=True)
        time.sleep(60)
    """)], env=clean_env(AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url,
                         SPYGLASS_FLUSH_INTERVAL="30"), stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == -signal.SIGTERM
    assert names(receiver) == ["before-sigterm"] + ["before-sigterm.child"] * 3


def test_an_apps_own_sigterm_handler_is_left_alone(receiver):
    result = run_python("""
        import signal
        def mine(signum, frame):
            pass
        signal.signal(signal.SIGTERM, mine)
        print(signal.getsignal(signal.SIGTERM) is mine)
    """, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url)
    assert result.stdout.strip() == "True"


def test_exit_with_endpoint_down_says_so_to_an_app_that_configured_logging():
    result = run_python(app("""
        import logging, time
        logging.basicConfig()
        trace('lost')
        time.sleep(1.5)  # the reporter has tried, and failed, before exit
    """), AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=f"http://127.0.0.1:{free_port()}",
                        SPYGLASS_FLUSH_INTERVAL="0.2")
    assert result.stderr.count("cannot export") == 1, result.stderr
    assert "connection refused" in result.stderr


def test_memory_stays_bounded_when_the_endpoint_is_unreachable():
    result = run_python(app("""
        import gc, json, psutil, spyglass.agent, time
        process = psutil.Process()
        for i in range(3000):
            trace("warm", children=4)
        reporter = spyglass.agent.get().reporter
        while reporter._transport is None:  # httpx, imported at the first export: not growth
            time.sleep(0.01)
        gc.collect()
        before = process.memory_info().rss
        for i in range(30000):
            trace("load", children=4)
        gc.collect()
        after = process.memory_info().rss
        print(json.dumps({"growth": after - before, "queue": reporter._waiting(),
                          "dropped": reporter.counters["dropped"]}))
    """), timeout=120, AUTOWRAPT_BOOTSTRAP="runtime",
        SPYGLASS_ENDPOINT=f"http://127.0.0.1:{free_port()}", SPYGLASS_MAX_QUEUE_SIZE="500",
        SPYGLASS_SHUTDOWN_TIMEOUT="0.5")
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert stats["queue"] <= 500 + 2
    assert stats["dropped"] > 20000
    assert stats["growth"] < 4 * 1024 * 1024, stats


def test_metrics_are_folded_while_the_queue_never_empties(receiver):
    # The app makes traces faster than they are exported, so the queue is never empty and
    # the reporter thread has little of the GIL; values must still all be folded: by the
    # reporter between batches (4 times a second), and by the app's own thread when
    # metrics.MAX_PENDING of them wait (8,192 fill up in under half a second at the 20,000
    # a second recorded here, paced by the clock).
    result = run_python("""
        import json, time, opentracing, spyglass, spyglass.agent
        from spyglass import metrics
        with opentracing.tracer.start_active_span("first"):
            pass
        spyglass.flush(10)  # the first export (httpx imported) and
        time.sleep(1.5)  # the process snapshot: one-time work, done before the load
        now = time.monotonic()
        end, next_value = now + 3, now
        while now < end:
            with opentracing.tracer.start_active_span("load"):
                pass
            now = time.monotonic()
            if now >= next_value:
                metrics.counter("load.count")
                next_value = now + 1 / 20000
        running = spyglass.agent.get()
        print(json.dumps({"dropped": running.metrics.dropped,
                          "traces dropped": running.reporter.counters["dropped"]}))
    """, timeout=60, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url,
        SPYGLASS_METRICS_INTERVAL="1", SPYGLASS_SHUTDOWN_TIMEOUT="1")
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert stats["dropped"] == 0, stats


def test_an_apps_handler_installed_later_gets_each_sigterm_once(receiver):
    # Celery's worker installs its own SIGTERM handler after the sensor started: its
    # warm shutdown runs once per signal, as without spyglass.
    with subprocess.Popen([sys.executable, "-c", app("""
        import signal, threading, time
        calls = []
        signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
        print("ready", flush=True)
        threading.Event().wait(1.5)
        print(len(calls), flush=True)
    """)], env=clean_env(AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url),
            stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout.readline().strip() == "1"
        assert proc.wait(timeout=20) == 0


def test_a_forked_childs_sigterm_never_reaches_its_parent(receiver):
    # Celery's main process handles SIGTERM its own way, and so does each prefork child it
    # forks: a child's SIGTERM (recycled, revoked) must not stop the parent.
    result = run_python(app("""
        import os, signal, time
        calls = []
        signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
        child = os.fork()
        if child == 0:
            signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(7))
            time.sleep(30)
            os._exit(0)
        time.sleep(0.3)
        os.kill(child, signal.SIGTERM)
        print(os.waitpid(child, 0)[1] >> 8, flush=True)
        time.sleep(1)
        print(len(calls), flush=True)
    """), AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url)
    assert result.stdout.split() == ["7", "0"]
