"""spyglass under real gunicorn (--preload, several workers) with the example app and a
real receiver: every worker reports; stop, reload and recycling lose nothing finished."""
import signal

from support.processes import run_python
from support.servers import (gunicorn, gunicorn_worker_pids, histogram_count, pids_with,
                            request_spans)


def wait_for_workers(receiver, server, count):
    receiver.wait_for(lambda r: len(gunicorn_worker_pids(server.output())) >= count, timeout=20)
    workers = gunicorn_worker_pids(server.output())
    assert len(workers) >= count, server.output()
    assert receiver.wait_for(lambda r: pids_with(r, "process.cpu.time") >= workers,
                             timeout=15), server.output()
    return workers


def test_preload_workers_all_report_and_sigterm_loses_nothing(receiver):
    with gunicorn(receiver, "--preload", "--workers", "3", "--bind", "127.0.0.1:{port}") as server:
        server.wait_ready()
        workers = wait_for_workers(receiver, server, 3)
        assert {s for s, _ in server.drive("/", 90)} == {200}
        assert server.stop(signal.SIGTERM) == 0  # gunicorn's graceful stop
    spans = request_spans(receiver)
    assert len(spans) == 91
    assert {s["resource"]["process.pid"] for s in spans} <= workers
    assert len({s["resource"]["process.pid"] for s in spans}) > 1
    assert histogram_count(receiver, "http.server.request.duration", **{"http.route": "/"}) == 91
    assert receiver.schema_errors == []


def test_max_requests_recycling_and_hup_reload_lose_nothing(receiver):
    with gunicorn(receiver, "--preload", "--workers", "2", "--max-requests", "10",
                  "--bind", "127.0.0.1:{port}") as server:
        server.wait_ready()
        assert {s for s, _ in server.drive("/", 40, concurrency=4)} == {200}
        before = gunicorn_worker_pids(server.output())
        server.send(signal.SIGHUP)
        receiver.wait_for(lambda r: len(gunicorn_worker_pids(server.output()) - before) >= 2,
                          timeout=20)
        server.wait_ready()
        assert {s for s, _ in server.drive("/", 10)} == {200}
        assert server.stop(signal.SIGTERM) == 0
        assert len(gunicorn_worker_pids(server.output())) > 4, server.output()
    assert len(request_spans(receiver)) == 52
    assert histogram_count(receiver, "http.server.request.duration", **{"http.route": "/"}) == 52


def test_a_fork_in_the_middle_of_an_import_on_the_reporter_thread(receiver, tmp_path):
    """The master forks a worker at any moment, its reporter thread running: forked in the
    middle of that thread's import (httpx, the first time it exports), the worker once found
    the module half-initialized for good, and never exported anything; then the fork waited
    for the import (seconds, under load). Now the fork does not wait, and the child imports
    the module afresh, package and submodules."""
    package = tmp_path / "slow_to_import"
    package.mkdir()
    (package / "part.py").write_text("PART = True\n")
    (package / "__init__.py").write_text(
        "from . import part\nimport time\ntime.sleep(2)\nLOADED = True\n")
    result = run_python(f"""
        import os, signal, sys, time
        sys.path.insert(0, {str(tmp_path)!r})
        from spyglass import agent

        def import_slowly():
            import slow_to_import
            return []

        agent.start().reporter.add_periodic(import_slowly, 3600, first_delay=0)
        while "slow_to_import.part" not in sys.modules:
            time.sleep(0.001)
        pid = os.fork()  # the reporter thread is inside the import
        if pid == 0:
            signal.alarm(10)  # a half-imported module can hang its next import
            import slow_to_import.part
            loaded = slow_to_import.LOADED and slow_to_import.part.PART
            os._exit(0 if loaded else 3)
        # The fork did not wait for the import to finish here.
        print(hasattr(sys.modules["slow_to_import"], "LOADED"))
        print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    """, SPYGLASS_ENDPOINT=receiver.url)
    assert result.stdout.split() == ["False", "0"], result
