"""The host app comes first, off the happy path too: a collector that is down, refusing or
a black hole; exit, signals during the exit drain, forks while the reporter encodes;
process pools; big traces and receivers with a body limit. Real processes, real signals,
a real receiver or a real ``spyglass serve``.

Bounds on time here are generous ceilings that tell a wait from none (the waits they
catch are of ``shutdown_timeout``, set far above them); the figures are in benchmarks/.
"""
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from collector.conftest import RunningCollector
from support.processes import app, clean_env, run_python
from support.services import free_port


class BlackHole:
    """Accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._closed:
            try:
                self.accepted.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        self._closed = True
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def black_hole():
    hole = BlackHole()
    yield hole
    hole.close()


def refused_url():
    return f"http://127.0.0.1:{free_port()}"


def timed_run(code, **env):
    started = time.monotonic()
    result = run_python(code, check=False, **env)
    return result, time.monotonic() - started


# -- 1, 2: quiet, and exit costs nothing when there is nothing to wait for -----------------

@pytest.mark.parametrize("code", [
    "import time; time.sleep(1.5)",  # the snapshot was tried, and refused, before exit
    app("trace('lost', children=3)"),  # exits before anything was ever sent
    app("import time\ntrace('lost')\ntime.sleep(1.5)\ntrace('lost-too')"),
], ids=["sleep", "short-script", "traces-after-a-failure"])
def test_exit_with_the_collector_down_is_quiet_and_does_not_wait(code):
    result, elapsed = timed_run(code, AUTOWRAPT_BOOTSTRAP="runtime",
                                SPYGLASS_ENDPOINT=refused_url(), SPYGLASS_SHUTDOWN_TIMEOUT="30")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == ""
    assert elapsed < 10  # a wait would be shutdown_timeout: 30 s


def test_exit_against_a_black_hole_is_bounded_by_shutdown_timeout(black_hole):
    result, elapsed = timed_run(app("trace('unanswered', children=2)"),
                                AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=black_hole.url,
                                SPYGLASS_SHUTDOWN_TIMEOUT="2")
    assert result.returncode == 0 and result.stderr == ""
    assert black_hole.accepted  # it did try
    assert elapsed < 2 + 6


def test_a_process_with_nothing_queued_and_metrics_off_never_connects(black_hole):
    result, _ = timed_run("print('hi')", AUTOWRAPT_BOOTSTRAP="runtime",
                          SPYGLASS_ENDPOINT=black_hole.url, SPYGLASS_METRICS_INTERVAL="0",
                          SPYGLASS_SHUTDOWN_TIMEOUT="30")
    assert result.stdout == "hi\n" and result.stderr == ""
    assert black_hole.accepted == []


# -- 3: no re-entry, no deadlock -------------------------------------------------------------

def start_app(code, **env):
    return subprocess.Popen([sys.executable, "-c", code], env=clean_env(**env),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_line(proc, expected):
    line = proc.stdout.readline().strip()
    assert line == expected, (line, proc.stderr.read() if proc.poll() is not None else "")


@pytest.mark.parametrize("signals", [[signal.SIGTERM], [signal.SIGTERM, signal.SIGTERM],
                                     [signal.SIGINT]], ids=["TERM", "TERM-TERM", "INT"])
def test_signals_during_the_exit_drain(black_hole, signals):
    """A SIGTERM lets the drain finish within shutdown_timeout, then the process dies of it
    (a pool's terminate() comes while its workers drain); a second one, or a Ctrl-C, ends
    it at once."""
    proc = start_app(app("""
        trace("queued", children=5)
        print("exiting", flush=True)
    """), AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=black_hole.url,
        SPYGLASS_SHUTDOWN_TIMEOUT="4", SPYGLASS_FLUSH_INTERVAL="30")
    wait_for_line(proc, "exiting")
    time.sleep(0.5)  # in the at-exit drain, waiting for the black hole
    started = time.monotonic()
    for signum in signals:
        proc.send_signal(signum)
        time.sleep(0.1)
    returncode = proc.wait(timeout=4 + 5)
    elapsed = time.monotonic() - started
    _, stderr = proc.communicate()
    if signals == [signal.SIGTERM]:
        assert returncode == -signal.SIGTERM and elapsed < 4 + 1
    elif signals == [signal.SIGTERM, signal.SIGTERM]:
        assert returncode == -signal.SIGTERM and elapsed < 2  # not the rest of the drain
    else:
        assert returncode == 0 and stderr == "" and elapsed < 2  # Ctrl-C: exits, quietly


@pytest.mark.parametrize("sigterms", [1, 2])
def test_sigterm_while_running_drains_within_shutdown_timeout_or_ends_at_a_second(black_hole,
                                                                                   sigterms):
    proc = start_app(app("""
        import time
        trace("queued", children=5)
        print("ready", flush=True)
        time.sleep(60)
    """), AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=black_hole.url,
        SPYGLASS_SHUTDOWN_TIMEOUT="3", SPYGLASS_FLUSH_INTERVAL="30")
    wait_for_line(proc, "ready")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)  # drains against the black hole, for up to 3 s
    if sigterms == 2:
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # ends it now
    assert proc.wait(timeout=3 + 5) == -signal.SIGTERM
    assert time.monotonic() - started < (3 + 1 if sigterms == 1 else 2)
    proc.communicate()


SPAWN_POOL = """
import multiprocessing, opentracing

def work(i):
    with opentracing.tracer.start_active_span(f"task-{i}"):
        return i * i

if __name__ == "__main__":
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        print(sum(pool.map(work, range(8))), flush=True)
"""


def test_a_spawn_pool_program_30_times_in_a_row_never_hangs(tmp_path, receiver):
    script = tmp_path / "spawn_pool.py"
    script.write_text(SPAWN_POOL)
    for run in range(30):
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                                timeout=60, env=clean_env(AUTOWRAPT_BOOTSTRAP="runtime",
                                                          SPYGLASS_ENDPOINT=receiver.url))
        assert (result.returncode, result.stdout, result.stderr) == (0, "140\n", ""), run


# -- 7: process pools report -----------------------------------------------------------------

POOL = """
import sys, opentracing

def work(i):
    with opentracing.tracer.start_active_span(f"task-{i}"):
        return i * i

if __name__ == "__main__":
    kind, method = sys.argv[1], sys.argv[2]
    if kind == "pool":
        import multiprocessing
        with multiprocessing.get_context(method).Pool(2) as pool:
            print(sum(pool.map(work, range(8))), flush=True)
    elif kind == "pool-closed":
        import multiprocessing
        pool = multiprocessing.get_context(method).Pool(2, maxtasksperchild=3)
        print(sum(pool.map(work, range(8), chunksize=1)), flush=True)
        pool.close()
        pool.join()
    elif kind == "executor":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        context = multiprocessing.get_context(method)
        with ProcessPoolExecutor(2, mp_context=context) as executor:
            print(sum(executor.map(work, range(8))), flush=True)
    elif kind == "billiard":
        import billiard
        pool = billiard.get_context(method).Pool(2)
        print(sum(pool.map(work, range(8))), flush=True)
        pool.close()
        pool.join()
"""


@pytest.mark.parametrize("kind,method", [
    (kind, method) for kind in ("pool", "pool-closed", "executor")
    for method in ("fork", "forkserver", "spawn")] + [("billiard", "fork")])
def test_pool_workers_deliver_every_tasks_span(tmp_path, receiver, kind, method):
    script = tmp_path / "pool.py"
    script.write_text(POOL)
    result = subprocess.run([sys.executable, str(script), kind, method], capture_output=True,
                            text=True, timeout=120,
                            # Only the drain at a worker's end can deliver: no periodic
                            # export or metrics wake-up gets there first.
                            env=clean_env(AUTOWRAPT_BOOTSTRAP="runtime",
                                          SPYGLASS_ENDPOINT=receiver.url,
                                          SPYGLASS_FLUSH_INTERVAL="60",
                                          SPYGLASS_METRICS_INTERVAL="0"))
    assert (result.returncode, result.stdout, result.stderr) == (0, "140\n", "")
    expected = {f"task-{i}" for i in range(8)}
    receiver.wait_for(lambda r: {s["name"] for s in r.spans()} >= expected, timeout=10)
    names = [s["name"] for s in receiver.spans() if s["name"].startswith("task-")]
    assert sorted(names) == sorted(expected)  # each once
    assert receiver.schema_errors == []


# -- 4: memory bounded by spans ----------------------------------------------------------------

BIG_TRACES = """
import gc, json, time, psutil, spyglass.agent
process = psutil.Process()
pauses = []
def timed_gc(phase, info):
    if phase == "start":
        timed_gc.started = time.perf_counter()
    elif info["generation"] == 2:
        pauses.append(time.perf_counter() - timed_gc.started)
gc.callbacks.append(timed_gc)
for i in range(20):
    trace(f"warm{i}", children=999)
time.sleep(1)
base = process.memory_info().rss
for i in range(400):
    trace(f"t{i}", children=999)
    if i % 45 == 44:
        time.sleep(0.2)
reporter = spyglass.agent.get().reporter
print(json.dumps({"growth": process.memory_info().rss - base, "dropped": reporter.counters["dropped"],
                  "max_gc_pause": max(pauses, default=0)}))
"""


def test_memory_stays_bounded_by_spans_with_big_traces_and_the_collector_down():
    import json

    result = run_python(app(BIG_TRACES), timeout=300, AUTOWRAPT_BOOTSTRAP="runtime",
                        SPYGLASS_ENDPOINT=refused_url())
    figures = json.loads(result.stdout)
    assert figures["dropped"] > 0
    assert figures["growth"] < 64 << 20, figures


# -- 5: batches any receiver takes; 413 splits -------------------------------------------------

def stored_spans(collector, service):
    traces = collector.api("/traces", service=service, limit=10000)["traces"]
    return {trace["name"]: trace["span_count"] for trace in traces}


def test_413_splits_the_batch_down_to_one_trace_against_spyglass_serve(tmp_path):
    collector = RunningCollector(tmp_path / "limit.db",
                                 env={"SPYGLASS_COLLECTOR_MAX_BODY": str(128 * 1024)})
    try:
        result = run_python(app("""
            import spyglass
            for i in range(40):
                trace(f"medium{i}", children=100)  # ~25 kB each: ~1 MB in all
            trace("huge", children=999)  # ~250 kB alone: over the limit
            spyglass.flush(30)
            print(spyglass.agent.get().reporter.counters["too_large"])
        """), timeout=120, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=collector.url,
            SPYGLASS_SERVICE_NAME="split", SPYGLASS_FLUSH_INTERVAL="30")
        assert result.stderr == "" and result.stdout == "1\n"  # the huge trace, counted
        stored = stored_spans(collector, "split")
        assert {name: stored.get(name) for name in (f"medium{i}" for i in range(40))} == {
            f"medium{i}": 101 for i in range(40)}
        assert "huge" not in stored  # dropped alone, and counted
    finally:
        collector.stop()


def test_after_an_outage_everything_queued_reaches_spyglass_serve(tmp_path):
    port = free_port()
    proc = start_app(app("""
        import sys, spyglass
        for i in range(200):
            trace(f"queued{i}", children=99)  # 20,000 spans: within max_queue_spans
        print("queued", flush=True)
        sys.stdin.readline()
        print("flushed" if spyglass.flush(60) else "not flushed", flush=True)
    """), AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=f"http://127.0.0.1:{port}",
        SPYGLASS_SERVICE_NAME="outage")
    try:
        wait_for_line(proc, "queued")
        time.sleep(3)  # the collector is down: retries, backing off
        collector = RunningCollector(tmp_path / "outage.db", "--port", str(port))
        try:
            proc.stdin.write("\n")
            proc.stdin.flush()
            wait_for_line(proc, "flushed")
            stored = stored_spans(collector, "outage")
            assert len(stored) == 200 and set(stored.values()) == {100}
        finally:
            collector.stop()
    finally:
        proc.kill()
        proc.communicate()


# -- 6: fork never waits for the reporter's work ------------------------------------------------

def test_fork_while_the_reporter_encodes_big_traces_does_not_wait_for_it(receiver):
    result = run_python(app("""
        import os, json, time, spyglass
        for i in range(60):
            trace(f"big{i}", children=999)
        time.sleep(0.3)  # the reporter is encoding
        waits = []
        for i in range(10):
            started = time.perf_counter()
            pid = os.fork()
            if pid == 0:
                trace("child")
                os._exit(0 if spyglass.flush(10) else 1)
            waits.append(time.perf_counter() - started)
            os.waitpid(pid, 0)
        print(json.dumps(max(waits)))
    """), timeout=120, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url)
    assert float(result.stdout) < 1.0  # was up to 5 s: FORK_WAIT, the import lock's limit
    receiver.wait_for(lambda r: sum(s["name"] == "child" for s in r.spans()) == 10)


def test_a_slow_calls_stack_masks_the_literals_of_its_source_lines(tmp_path, receiver):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent("""
        import sqlite3, spyglass, opentracing
        db = sqlite3.connect(":memory:")
        with opentracing.tracer.start_active_span("job"):
            db.execute("SELECT 'literal-SECRET-1' WHERE 1 = ?", (1,)); password = "hunter2-SECRET-2"
        print(spyglass.flush(10))
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60, env=clean_env(
                                AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url,
                                SPYGLASS_TIMING_DBAPI2_SQLITE3="0"))  # every call slow
    assert result.stdout.strip() == "True", result.stderr
    stacks = [s["attrs"]["spyglass.stack"] for s in receiver.spans()
              if "spyglass.stack" in s["attrs"] and s["name"] != "connect"]  # outside the trace
    assert stacks and all('db.execute("?", (1,))' in stack for stack in stacks), stacks
    assert "SECRET" not in receiver.raw_text()
