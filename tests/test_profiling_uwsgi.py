"""Profiles linked to traces under real uWSGI: workers forked in C by a master that loaded
the app, a Flask route busy in pure Python; a real receiver parsing every profile with
opentelemetry-proto, then ``spyglass serve`` and its trace page in headless Chromium."""
import subprocess
import sys
import time

from collector.conftest import RunningCollector
from support.browser import SCREENSHOTS
from support.profiles import hottest_leaf, trace_profiles
from support.servers import request_spans, uwsgi, uwsgi_worker_pids
from support.web import APPS


def profiled_uwsgi(endpoint_owner, **env):
    """The app under uWSGI, 2 workers forked from a master that loaded it; traces sampled
    at 0, kept when slower than 0.25 s; 100 samples a second."""
    return uwsgi(endpoint_owner, "--master", "--processes", "2", "--enable-threads",
                 "--need-app", "--chdir", APPS, "--module", "profiled_app:app",
                 "--http-socket", "127.0.0.1:{port}", AUTOWRAPT_BOOTSTRAP="flask",
                 SPYGLASS_PROFILING="true", SPYGLASS_PROFILING_HZ="100",
                 SPYGLASS_SAMPLE_RATE="0", SPYGLASS_SLOW_REQUEST_TIME="0.25",
                 SPYGLASS_FLUSH_INTERVAL="0.2", **env)


def wait_until_both_workers_sample(server, timeout=30):
    """Until each of the 2 workers answers that its profiler runs (it starts after the
    fork, with the sensor's reporter: a fixed wait is too short on a loaded machine)."""
    deadline, sampling = time.monotonic() + timeout, set()
    while len(sampling) < 2:
        assert time.monotonic() < deadline, f"workers sampling: {sampling}"
        for status, answer in server.drive("/sampling", 4, concurrency=2):
            if status == 200 and answer["sampling"]:
                sampling.add(answer["pid"])
        time.sleep(0.2)


def test_a_slow_request_has_a_linked_profile_and_a_fast_dropped_one_none(receiver):
    with profiled_uwsgi(receiver) as server:
        server.wait_ready()
        server.wait_workers_ready(2)
        wait_until_both_workers_sample(server)
        slow = server.drive("/slow", 4, concurrency=2)
        fast = server.drive("/fast", 6, concurrency=2)
        assert {status for status, _ in slow + fast} == {200}
        receiver.wait_for(lambda r: len(trace_profiles(r)) >= 4, timeout=15)
        time.sleep(1.0)  # anything the fast requests would wrongly send
        server.quit()
        workers = uwsgi_worker_pids(server.output())
    assert receiver.schema_errors == []
    slow_spans = request_spans(receiver, "/slow")
    assert len(slow_spans) == 4 and request_spans(receiver, "/fast") == []
    profiles = trace_profiles(receiver)
    slow_traces = {span["traceId"] for span in slow_spans}
    assert len(profiles) == 4
    for profile in profiles:
        trace_ids = {sample["trace_id"] for sample in profile["samples"]}
        assert len(trace_ids) == 1 and trace_ids <= slow_traces
        assert hottest_leaf(profile) == "render_report", profile["samples"]
        assert int(profile["resource"]["process.pid"]["intValue"]) in workers
        assert profile["root_name"] == "GET /slow"
    # Both workers, forked in C, profile themselves.
    assert {profile["resource"]["process.pid"]["intValue"] for profile in profiles} == \
        {str(span["resource"]["process.pid"]) for span in slow_spans}


def test_the_trace_page_draws_the_slow_request_flame_graph(tmp_path, browser):
    collector = RunningCollector(tmp_path / "profiles.db")
    try:
        with profiled_uwsgi(collector) as server:
            server.wait_ready()
            server.wait_workers_ready(2)
            wait_until_both_workers_sample(server)
            assert {status for status, _ in server.drive("/slow", 2, concurrency=2)} == {200}
            server.quit()
        traces = wait_for_profiled_traces(collector, 2)
        page = browser.new_page()
        try:
            response = page.goto(f"{collector.url}/traces/{traces[0]}")
            assert response.status == 200
            page.locator(".flame .flame-box").first.wait_for()
            boxes = page.evaluate("""() => [...document.querySelectorAll('.flame-box')].map(box => (
                {label: box.innerText, width: box.getBoundingClientRect().width,
                 depth: parseFloat(box.style.top)}))""")
            flame_width = page.locator(".flame").bounding_box()["width"]
            SCREENSHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "trace_profile.png"), full_page=True)
        finally:
            page.close()
        # The widest leaf: the deepest of the boxes that hold most of the time (a sample or
        # two of the response's own code may sit deeper, narrow).
        wide = [box for box in boxes if box["width"] > 0.8 * flame_width]
        leaf = max(wide, key=lambda box: box["depth"])
        assert leaf["label"].startswith("render_report (profiled_app.py:"), boxes
        report = subprocess.run([sys.executable, "-m", "spyglass.cli", "report", "--url",
                                 collector.url, "--profile", "GET /slow", "--width", "120"],
                                capture_output=True, text=True, timeout=60)
        hottest = report.stdout.split("HOTTEST FUNCTIONS")[1].splitlines()[2]
        assert hottest.split()[0] == "render_report", report.stdout
    finally:
        collector.stop()


def wait_for_profiled_traces(collector, count, timeout=20):
    """The ids of ``count`` GET /slow traces that have a profile in the collector."""
    deadline = time.monotonic() + timeout
    while True:
        traces = [trace["trace_id"] for trace in collector.api("/traces", route="/slow")["traces"]]
        profiled = [trace for trace in traces if collector.api("/profile", trace_id=trace)["samples"]]
        if len(profiled) >= count or time.monotonic() > deadline:
            assert len(profiled) >= count, (traces, profiled)
            return profiled
        time.sleep(0.3)
