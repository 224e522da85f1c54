"""Profiles linked to traces under real uWSGI: workers forked in C by a master that loaded
the app, a Flask route busy in pure Python, a real receiver parsing every profile with
opentelemetry-proto."""
import os
import time

from profile_helpers import hottest_leaf, trace_profiles
from server_helpers import ROOT, request_spans, uwsgi, uwsgi_worker_pids

APPS = os.path.join(ROOT, "tests", "apps")


def profiled_uwsgi(endpoint_owner, **env):
    """The app under uWSGI, 2 workers forked from a master that loaded it; traces sampled
    at 0, kept when slower than 0.25 s; 100 samples a second."""
    return uwsgi(endpoint_owner, "--master", "--processes", "2", "--enable-threads",
                 "--need-app", "--chdir", APPS, "--module", "profiled_app:app",
                 "--http-socket", "127.0.0.1:{port}", AUTOWRAPT_BOOTSTRAP="flask",
                 SPYGLASS_PROFILING="true", SPYGLASS_PROFILING_HZ="100",
                 SPYGLASS_SAMPLE_RATE="0", SPYGLASS_SLOW_REQUEST_TIME="0.25",
                 SPYGLASS_FLUSH_INTERVAL="0.2", **env)


def test_a_slow_request_has_a_linked_profile_and_a_fast_dropped_one_none(receiver):
    with profiled_uwsgi(receiver) as server:
        server.wait_ready()
        server.wait_workers_ready(2)
        time.sleep(1.5)  # each worker's sampler starts a second after its fork
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
