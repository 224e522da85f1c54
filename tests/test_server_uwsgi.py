"""spyglass under real uWSGI (PyPI's ``uwsgi``), with the examples of uwsgi_examples/ and a
real receiver: every worker reports, and a stop, a reload or a recycled worker loses
nothing that had finished."""
import os
import signal
import subprocess
import time

import pytest

from support.servers import (EXAMPLES, histogram_count, pids_with, request_spans, require_uwsgi,
                            uwsgi, uwsgi_script, uwsgi_worker_pids, uwsgi_workers_in_order)

INI = os.path.join(EXAMPLES, "uwsgi.ini")
PRELOAD_INI = os.path.join(EXAMPLES, "uwsgi_preload.ini")


def assert_every_worker_reported(receiver, server, requests, route="/"):
    workers = uwsgi_worker_pids(server.output())
    receiver.wait_for(lambda r: len(request_spans(r, route)) >= requests, timeout=15)
    spans = request_spans(receiver, route)
    assert len(spans) == requests, (len(spans), server.output())
    served = {span["resource"]["process.pid"] for span in spans}
    assert len(served) > 1 and served <= workers
    reported = receiver.wait_for(lambda r: pids_with(r, "process.cpu.time") >= workers and
                                 pids_with(r, "process.cpu.time"), timeout=15)
    assert reported >= workers, (reported, workers)
    assert receiver.schema_errors == []


def wait_for_idle_workers_to_report(receiver, server, count):
    workers = uwsgi_worker_pids(server.output())
    assert len(workers) == count, server.output()
    assert receiver.wait_for(lambda r: pids_with(r, "process.cpu.time") >= workers,
                             timeout=15), server.output()
    return workers


@pytest.mark.parametrize("ini", [INI, PRELOAD_INI], ids=["lazy-apps", "preload"])
def test_the_example_ini_every_worker_reports_and_sigint_loses_nothing(receiver, ini):
    with uwsgi(receiver, "--ini", ini) as server:
        server.wait_ready()
        # Idle workers report runtime metrics (and, with lazy-apps, have loaded the app).
        workers = wait_for_idle_workers_to_report(receiver, server, 4)
        responses = server.drive("/", 200, concurrency=32)
        assert {status for status, _ in responses} == {200}
        # SIGINT is brutal: what a worker inside a request has queued is lost, so give
        # the reporters their flush_interval first (see the graceful stop test).
        time.sleep(1.5)
        server.stop(signal.SIGINT)
        # The request made by wait_ready counts too.
        assert_every_worker_reported(receiver, server, 201)
        assert histogram_count(receiver, "http.server.request.duration",
                               **{"http.route": "/"}) == 201
        assert "Traceback" not in server.output()


def test_the_command_line_example_works_the_same(receiver):
    require_uwsgi()
    with uwsgi_script(receiver, os.path.join(EXAMPLES, "run_uwsgi.sh"), "--processes", "2") as server:
        server.wait_ready()
        wait_for_idle_workers_to_report(receiver, server, 2)
        server.wait_workers_ready(2)
        assert {s for s, _ in server.drive("/", 40)} == {200}
        server.quit()
        assert_every_worker_reported(receiver, server, 41)


@pytest.mark.parametrize("ini", [INI, PRELOAD_INI], ids=["lazy-apps", "preload"])
def test_graceful_stop_right_after_traffic_loses_nothing(receiver, ini):
    with uwsgi(receiver, "--ini", ini, "--processes", "2") as server:
        server.wait_ready()
        # One worker answering is not enough: the other may still be loading the app,
        # deaf to the graceful stop (see wait_workers_ready).
        server.wait_workers_ready(2)
        assert {s for s, _ in server.drive("/", 60)} == {200}
        server.quit()
    assert len(request_spans(receiver)) == 61
    assert histogram_count(receiver, "http.server.request.duration", **{"http.route": "/"}) == 61


def test_every_route_of_the_example_app(receiver):
    with uwsgi(receiver, "--ini", INI, "--processes", "2") as server:
        server.wait_ready()
        server.wait_workers_ready(2)
        assert server.get("/slow-sql")[0] == 200
        assert server.get("/error")[0] == 500
        status, body = server.get("/outbound")
        assert status == 200 and body == {"upstream_status": 200}
        server.quit()
    spans = receiver.spans()
    routes = {span["attrs"].get("http.route") for span in spans if span.get("kind") == 2}
    assert {"/slow-sql", "/error", "/outbound", "/"} <= routes
    assert any(span["attrs"].get("db.system") == "sqlite" for span in spans)
    errored = [s for s in spans if s["attrs"].get("http.route") == "/error"]
    assert errored and errored[0].get("status", {}).get("code") == 2
    assert histogram_count(receiver, "db.client.operation.duration",
                           **{"db.system": "sqlite"}) >= 1


@pytest.mark.parametrize("extra", [[], ["--skip-atexit-teardown"]], ids=["atexit", "skip-atexit-teardown"])
def test_max_requests_recycling_loses_nothing(receiver, extra):
    with uwsgi(receiver, "--ini", INI, "--processes", "2", "--max-requests", "10",
               "--min-worker-lifetime", "0",
               *extra) as server:
        server.wait_ready()
        assert {s for s, _ in server.drive("/", 60, concurrency=4)} == {200}
        # Recycled workers exit; what they had finished must have been sent.
        assert len(uwsgi_worker_pids(server.output())) > 2, server.output()
        # The last respawned workers report, and can take the stop: a worker still
        # loading the app misses it (uWSGI sets its handlers after the load).
        assert receiver.wait_for(
            lambda r: pids_with(r, "process.cpu.time") >= set(
                uwsgi_workers_in_order(server.output())[-2:]), timeout=20), server.output()
        server.wait_workers_ready(2)
        server.quit()
    assert len(request_spans(receiver)) == 61
    assert histogram_count(receiver, "http.server.request.duration", **{"http.route": "/"}) == 61


@pytest.mark.parametrize("ini", [INI, PRELOAD_INI], ids=["lazy-apps", "preload"])
def test_graceful_reload_loses_nothing_and_new_workers_report(receiver, ini):
    with uwsgi(receiver, "--ini", ini, "--processes", "2") as server:
        server.wait_ready()
        before = wait_for_idle_workers_to_report(receiver, server, 2)
        server.drive("/", 30)
        server.send(signal.SIGHUP)
        receiver.wait_for(lambda r: len(uwsgi_worker_pids(server.output()) - before) >= 2,
                          timeout=30)
        new_workers = uwsgi_worker_pids(server.output()) - before
        assert len(new_workers) == 2, server.output()
        server.wait_ready()
        server.drive("/", 30)
        assert receiver.wait_for(lambda r: pids_with(r, "process.cpu.time") >= new_workers,
                                 timeout=15)
        server.wait_workers_ready(2)
        server.quit()
    spans = request_spans(receiver)
    assert len(spans) == 62, len(spans)
    assert {s["resource"]["process.pid"] for s in spans} & new_workers


def test_the_master_runs_no_spyglass_thread_and_sigterm_reload_does_not_deadlock(receiver):
    # SIGTERM is uWSGI's brutal reload: workers die and come back, repeatedly.
    with uwsgi(receiver, "--ini", PRELOAD_INI, "--processes", "2") as server:
        server.wait_ready()
        for _ in range(2):
            before = uwsgi_worker_pids(server.output())
            server.send(signal.SIGTERM)
            receiver.wait_for(lambda r: len(uwsgi_worker_pids(server.output()) - before) >= 2,
                              timeout=30)
            server.wait_ready()
            assert {s for s, _ in server.drive("/", 10)} == {200}
        master = server.process.pid
        threads = subprocess.run(["ps", "-L", "-o", "comm=", "-p", str(master)],
                                 capture_output=True, text=True).stdout.split()
        assert len(threads) == 1, threads  # only the master's own thread
        server.stop(signal.SIGINT)
    assert master not in pids_with(receiver, "process.cpu.time")


def test_without_threads_one_warning_says_exactly_what_to_add(caplog):
    # uWSGI >= 2.0.27 always enables threads, so a threadless uWSGI cannot be started
    # here: the check runs against a module shaped like an old uWSGI's.
    import types

    from spyglass.instrument import uwsgi as hook

    class Agent:
        reporter = types.SimpleNamespace(at_exit=lambda: None)
        resumed = 0

        def __init__(self):
            self.instrumented = []

        def resume_in_child(self):
            self.resumed += 1

    for worker_id in (0, 2):  # the master logs; another worker of the same server does not
        module = types.ModuleType("uwsgi")
        module.has_threads, module.opt = 0, {"lazy-apps": b"true"}
        module.worker_id = lambda worker_id=worker_id: worker_id
        with caplog.at_level("WARNING", logger="spyglass"):
            hook.install(Agent(), module)
    assert [r.getMessage() for r in caplog.records] == [hook.THREADS_WARNING]
    assert "enable-threads = true" in hook.THREADS_WARNING
    assert "--enable-threads" in hook.THREADS_WARNING
