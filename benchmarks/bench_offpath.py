"""Off the happy path: exit with the collector down, fork while the reporter encodes big
traces, memory with the collector down and 1,000-span traces.

    python benchmarks/bench_offpath.py

- exit: `python -c "<work>; time.sleep(1.5)"` under AUTOWRAPT_BOOTSTRAP=runtime with nothing
  listening at the endpoint, against the same process under AUTOWRAPT_BOOTSTRAP=runtime
  with SPYGLASS_ENABLED=false (autowrapt's floor, the same startup): what exit adds
  (bar: <= 50 ms). Best of BENCH_RUNS runs (default 7) each, interleaved.
- fork: `os.fork()` 30 times while a thread of the app makes 1,000-span traces as fast as it
  can and the reporter encodes them for a live receiver, against the same process without
  the sensor (its thread making the same calls to opentracing's no-op tracer: the forking
  thread's wait for the GIL is there too) (bar: max <= 50 ms).
- memory: 1,000-span traces at 45 traces/s for BENCH_SECONDS (default 20) seconds, the
  collector down, against the same with a receiver up: RSS added (bar: <= 64 MiB), and the
  longest full (generation 2) GC pause in each.
"""
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from support.otlp_receiver import OTLPReceiver  # noqa: E402  (the tests' real OTLP receiver)

from _util import verdict  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
ENV = {k: v for k, v in os.environ.items()
       if not k.startswith(("SPYGLASS_", "AUTOWRAPT_", "OTEL_"))}
DOWN = "http://127.0.0.1:9"

TRACE = textwrap.dedent("""
    import opentracing
    def trace(name, children):
        with opentracing.tracer.start_active_span(name):
            for i in range(children):
                with opentracing.tracer.start_active_span("SELECT * FROM t WHERE id = ?",
                                                          tags={"db.system": "postgresql"}):
                    pass
""")


def run(code, **env):
    environment = {**ENV, "AUTOWRAPT_BOOTSTRAP": "runtime", **env}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], env=environment, text=True,
                            capture_output=True, cwd=tempfile.gettempdir(), timeout=600)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return elapsed, result


def bench_exit():
    cases = {
        "sleep 1.5 s": "import time; time.sleep(1.5)",
        "a trace, then exit": TRACE + "trace('job', 10)",
        "a trace, sleep 1.5 s, a trace": TRACE + "import time\ntrace('a', 10)\n"
                                         "time.sleep(1.5)\ntrace('b', 10)",
    }
    for label, code in cases.items():
        with_sensor, without = [], []
        for _ in range(RUNS):
            elapsed, result = run(code, SPYGLASS_ENDPOINT=DOWN)
            assert result.stderr == "", result.stderr
            with_sensor.append(elapsed)
            without.append(run(code, SPYGLASS_ENABLED="false")[0])
        added = min(with_sensor) - min(without)
        print(f"exit, collector down, {label}: +{added * 1e3:.1f} ms "
              f"(bar <= 50 ms) {verdict(added, 0.050)}")


FORKS = TRACE + textwrap.dedent("""
    import json, os, threading, time
    waits = []
    stop = False
    def load():
        while not stop:
            trace("big", 999)
    threading.Thread(target=load, daemon=True).start()
    time.sleep(1)
    for i in range(30):
        time.sleep(0.05)
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        waits.append(time.perf_counter() - started)
        os.waitpid(pid, 0)
    stop = True
    print(json.dumps(waits))
""")


def bench_fork():
    receiver = OTLPReceiver().start()
    try:
        waits = {}
        for variant in ("plain", "sensor"):
            environment = {**ENV, "SPYGLASS_ENDPOINT": receiver.url}
            if variant == "sensor":
                environment["AUTOWRAPT_BOOTSTRAP"] = "runtime"
            result = subprocess.run([sys.executable, "-c", FORKS], env=environment,
                                    text=True, capture_output=True, check=True, timeout=600)
            waits[variant] = json.loads(result.stdout)
    finally:
        receiver.stop()
    worst = max(waits["sensor"])
    print(f"fork while the reporter encodes 1,000-span traces: max {worst * 1e3:.1f} ms, "
          f"median {sorted(waits['sensor'])[15] * 1e3:.1f} ms over 30 (plain: max "
          f"{max(waits['plain']) * 1e3:.1f} ms) (bar: max <= 50 ms) {verdict(worst, 0.050)}")


MEMORY = TRACE + textwrap.dedent("""
    import gc, json, sys, time, psutil
    process = psutil.Process()
    pauses = []
    def timed(phase, info):
        if phase == "start":
            timed.started = time.perf_counter()
        elif info["generation"] == 2:
            pauses.append(time.perf_counter() - timed.started)
    gc.callbacks.append(timed)
    peak = 0
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        started = time.monotonic()
        for _ in range(45):
            trace("big", 999)
        peak = max(peak, process.memory_info().rss)
        time.sleep(max(0.0, 1 - (time.monotonic() - started)))
    import spyglass.agent
    print(json.dumps({"peak": peak, "max_gc_pause": max(pauses, default=0),
                      "counters": spyglass.agent.get().reporter.counters}))
""")


def memory_run(endpoint):
    result = subprocess.run([sys.executable, "-c", MEMORY, str(SECONDS)],
                            env={**ENV, "AUTOWRAPT_BOOTSTRAP": "runtime",
                                 "SPYGLASS_ENDPOINT": endpoint},
                            text=True, capture_output=True, check=True, timeout=600)
    return json.loads(result.stdout)


def bench_memory():
    receiver = OTLPReceiver().start()
    try:
        up = memory_run(receiver.url)
    finally:
        receiver.stop()
    down = memory_run(DOWN)
    added = (down["peak"] - up["peak"]) / (1 << 20)
    print(f"RSS, collector down vs up, 1,000-span traces at 45/s for {SECONDS:.0f} s: "
          f"{added:+.1f} MiB (peak {down['peak'] / (1 << 20):.0f} vs {up['peak'] / (1 << 20):.0f}"
          f" MiB) (bar <= +64 MiB) {verdict(added, 64)}")
    print(f"  longest full GC pause: {down['max_gc_pause'] * 1e3:.1f} ms down, "
          f"{up['max_gc_pause'] * 1e3:.1f} ms up; traces dropped while down: "
          f"{down['counters']['dropped']}")


if __name__ == "__main__":
    bench_exit()
    bench_fork()
    bench_memory()
