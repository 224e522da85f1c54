"""gevent: an app monkey-patched by gevent, under gunicorn's gevent worker or with
``patch_all()`` as its first line, traced as any other: a context per greenlet, the
reporter sending while the app runs, SIGTERM and exit as without gevent; and the sensor's
start imports nothing that ``patch_all()`` must come before."""
import json
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from support.processes import Script, run_python
from support.profiles import hottest_leaf, trace_profiles
from support.services import require_installed
from support.web import serve

pytest.importorskip("gevent")

# What patch_all() must see unimported (gevent patches ssl, and urllib3 and httpx take
# from ssl and socket what they need when imported), and what else a sensor's start could
# pull in that gevent patches.
BEFORE_PATCHING = ("ssl", "urllib3", "httpx", "socket", "select", "selectors", "asyncio",
                   "subprocess", "http.client", "concurrent.futures", "queue")


def first_line_modules(bootstrap):
    result = run_python("""
        import json, sys
        print(json.dumps(sorted(sys.modules)))
    """, AUTOWRAPT_BOOTSTRAP=bootstrap, SPYGLASS_ENDPOINT="http://127.0.0.1:9")
    return set(json.loads(result.stdout))


def test_the_sensors_start_imports_nothing_patch_all_must_precede():
    traced = first_line_modules("spyglass")
    # autowrapt's own start, with no group of ours: what autowrapt and wrapt import
    baseline = first_line_modules("no-such-group")
    assert "spyglass.agent" in traced and "spyglass.agent" not in baseline
    assert not (traced - baseline) & set(BEFORE_PATCHING)
    assert "urllib3" not in traced and "httpx" not in traced


def by_trace(spans):
    traces = {}
    for span in spans:
        traces.setdefault(span["traceId"], []).append(span)
    return traces


@pytest.mark.parametrize("profiling", ["false", "true"])
def test_gunicorn_gevent_worker(receiver, profiling):
    require_installed("gunicorn")
    process, base = serve(receiver, [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "2",
                                     "-b", "127.0.0.1:{port}", "gevent_app:app"],
                          SPYGLASS_PROFILING=profiling)
    try:
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda n: httpx.get(f"{base}/work/{n}", timeout=10).json(),
                                    range(60)))
        # sent while the workers run: the reporters keep sending under gevent
        spans = receiver.wait_for(lambda r: len(r.spans()) >= 240 and r.spans(), timeout=15)
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert answers == [{"n": n, "next": n + 1} for n in range(60)]
    assert "Traceback" not in output and "spyglass" not in output, output
    requests = [s for s in spans if s["kind"] == 2]
    assert len(requests) == 60 and {s["name"] for s in requests} == {"GET /work/<int:n>"}
    # a context per greenlet: each request's two queries are its own children
    for trace in by_trace(spans).values():
        request, = [s for s in trace if s["kind"] == 2]
        queries = [s for s in trace if s["name"] == "SELECT"]
        assert len(queries) == 2 and {q["parentSpanId"] for q in queries} == {request["spanId"]}
    assert receiver.schema_errors == []


PATCHED_APP = """
    from gevent import monkey; monkey.patch_all()
    import os, sqlite3, time
    import gevent
    import spyglass

    if os.environ.get("INIT"):
        spyglass.init()

    def job(n):
        with spyglass.tracer().start_active_span(f"job {n}"):
            connection = sqlite3.connect(":memory:")
            connection.execute("SELECT ?", (n,)).fetchone()
            time.sleep(0.05)  # the other greenlets run meanwhile
            connection.execute("SELECT ? + 1", (n,)).fetchone()

    gevent.joinall([gevent.spawn(job, n) for n in range(20)])
    print("waiting", flush=True)
    gevent.sleep(60)  # until SIGTERM
"""


@pytest.mark.parametrize("start", ["bootstrap", "init"])
def test_patch_all_first_then_sigterm(receiver, start):
    env = dict(SPYGLASS_ENDPOINT=receiver.url, SPYGLASS_METRICS_INTERVAL="0",
               SPYGLASS_FLUSH_INTERVAL="0.2")
    env.update(AUTOWRAPT_BOOTSTRAP="spyglass") if start == "bootstrap" else env.update(INIT="1")
    with Script(PATCHED_APP, **env) as app:
        app.wait_for_line("waiting")
        # sent while the app runs
        spans = receiver.wait_for(lambda r: len(r.spans()) >= 80 and r.spans())
        app.process.send_signal(signal.SIGTERM)
        returncode = app.process.wait(15)
        stderr = app.process.stderr.read()
    assert returncode == -signal.SIGTERM, stderr
    assert stderr == ""
    jobs = [s for s in spans if s["name"].startswith("job")]
    assert len(jobs) == 20
    # The 20 greenlets waited together, not one after the other: all were under way at once.
    assert max(int(s["startTimeUnixNano"]) for s in jobs) < min(
        int(s["endTimeUnixNano"]) for s in jobs)
    assert len([s for s in spans if s["name"] == "SELECT"]) == 40
    for trace in by_trace(spans).values():  # a context per greenlet
        job, = [s for s in trace if s["name"].startswith("job")]
        queries = [s for s in trace if s["name"] == "SELECT"]
        assert len(queries) == 2 and {q["parentSpanId"] for q in queries} == {job["spanId"]}


PROFILED_APP = """
    from gevent import monkey; monkey.patch_all()
    import json, sys, threading, time
    import gevent
    import opentracing

    def spin_in_pure_python(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sum(range(50))

    def sampler_thread():
        # An OS thread shows in sys._current_frames(), not in threading.enumerate() (greenlets)
        for thread_id, frame in sys._current_frames().items():
            while frame is not None:
                if frame.f_code.co_filename.endswith("sampler.py") and frame.f_code.co_name == "_run":
                    return thread_id
                frame = frame.f_back

    deadline = time.monotonic() + 10
    while sampler_thread() is None and time.monotonic() < deadline:
        gevent.sleep(0.05)
    ticks = []

    def ticker():  # runs only while the hub runs
        for _ in range(40):
            gevent.sleep(0.01)
            ticks.append(time.monotonic())

    def slow_request():
        gevent.sleep(0.05)
        with opentracing.tracer.start_active_span("slow-greenlet-request"):
            spin_in_pure_python(0.3)

    gevent.joinall([gevent.spawn(ticker), gevent.spawn(slow_request)])
    print(json.dumps({"sampler": sampler_thread() is not None,
                      "sampler_in_enumerate": any(t.name == "spyglass-profiler" for t in threading.enumerate()),
                      "ticks": len(ticks)}))
"""


def test_profiling_under_gevent_samples_from_an_os_thread_and_links_to_the_trace(receiver):
    """The sampler is an OS thread of its own (a greenlet would sample only when the app
    yields, and its waits would block the hub); the hub goes on running beside it; the
    samples of a greenlet's request go to its trace (greenlets take turns on one OS thread:
    they go to the trace begun last on it, as Configuration.md says)."""
    result = run_python(PROFILED_APP, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url,
                        SPYGLASS_PROFILING="true", SPYGLASS_PROFILING_HZ="100",
                        SPYGLASS_FLUSH_INTERVAL="0.2", SPYGLASS_METRICS_INTERVAL="0")
    assert result.stderr == ""
    assert json.loads(result.stdout) == {"sampler": True, "sampler_in_enumerate": False, "ticks": 40}
    profiles = receiver.wait_for(lambda r: trace_profiles(r))
    profile, = profiles
    assert profile["root_name"] == "slow-greenlet-request"
    assert hottest_leaf(profile) == "spin_in_pure_python"
    assert receiver.schema_errors == []
