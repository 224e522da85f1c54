"""Shared by the benchmark scripts: best-of-N timing, and the bar check printout."""
import time


def per_call(function, number, repeat=7):
    """Best per-call seconds over ``repeat`` runs of ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function(number)
        best = min(best, (time.perf_counter() - start) / number)
    return best


def best_per_call_interleaved(loops, rounds=9, clock=time.perf_counter):
    """{name: best seconds per call}, for ``loops`` ({name: (run, calls per round)}) taking
    turns round after round, after one warm-up round. This machine's speed drifts by tens
    of percent within a minute: a ratio of figures taken minutes apart measures the drift,
    one of figures taken in turns does not. ``clock``: time.process_time counts the CPU
    of all the process's threads (a background thread's share included), not the time
    other processes took."""
    best = dict.fromkeys(loops, float("inf"))
    for round_number in range(rounds + 1):
        for name, (run, number) in loops.items():
            start = clock()
            run(number)
            elapsed = (clock() - start) / number
            if round_number:
                best[name] = min(best[name], elapsed)
    return best


def verdict(value, bar, lower_is_better=True):
    ok = value <= bar if lower_is_better else value >= bar
    return "ok" if ok else "OVER THE BAR"


def export_to_sink(agent):
    """Send what the agent's tracer finishes nowhere, as the peers below are set up to:
    traces, and the lone root spans it hands the reporter without a list."""
    agent.tracer.export = agent.tracer.export_lone_root = lambda trace: None


# The peer agents, set up to export nowhere, as ours exports to a sink in these runs.
SENTRY_WITH_SINK = (
    "import sentry_sdk\n"
    "from sentry_sdk.transport import Transport\n"
    "class Sink(Transport):\n"
    "    def capture_envelope(self, envelope):\n"
    "        pass\n"
    "sentry_sdk.init(dsn='http://key@127.0.0.1:9/1', traces_sample_rate=1.0, transport=Sink)\n"
)
# Keep the peers quiet and off the network (their exporters would try a local agent).
PEER_ENV = {"DD_TRACE_AGENT_URL": "http://127.0.0.1:9", "DD_REMOTE_CONFIGURATION_ENABLED": "false",
            "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false", "DD_TRACE_STARTUP_LOGS": "false",
            "ELASTIC_APM_CENTRAL_CONFIG": "false"}


def without_periodic_work(agent):
    """No periodic work on the reporter's thread (its process snapshot scans the installed
    distributions, for minutes under callgrind): a thread that takes the GIL now and then
    costs the counted thread in proportion to the run's wall time, not to its requests."""
    agent.reporter._periodic.clear()


def counted(run, number):
    """``run(number)`` after a warm-up, then the process ends (the sensor's exit is not the
    requests'). The heap made so far is frozen: the cyclic GC's full collections would
    traverse it at moments that fall one side or the other of the two counted runs' ends,
    a difference of tens of thousands of instructions a request."""
    import gc
    import os

    run(50)  # caches, the first request's imports
    gc.collect()
    gc.freeze()
    run(number)
    os._exit(0)


def count_instructions(script, *args, env=None, timeout=1800):
    """Instructions the main thread of ``python script args`` runs, counted by valgrind's
    callgrind with a fixed hash seed: the same count however loaded the machine is. The main
    thread's only: the sensor's threads wake with the wall clock, which valgrind slows, so
    their work would not cancel out. ``env``: variables added to this one's."""
    import os
    import re
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes",
             f"--callgrind-out-file={directory}/out", sys.executable, script, *map(str, args)],
            capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "PYTHONHASHSEED": "0", **(env or {})})
        found = None
        if os.path.exists(f"{directory}/out-01"):  # thread 1, the main thread
            with open(f"{directory}/out-01") as out:
                found = re.search(r"^(?:summary|totals): (\d+)", out.read(), re.MULTILINE)
    if result.returncode != 0 or not found:
        raise SystemExit(f"valgrind {script} {args}: {result.stderr[-2000:]}")
    return int(found.group(1))


def instructions_per_call(script, *args, small=200, large=1200, env=None):
    """Instructions per call of ``python script args N``, which makes N calls: the
    difference of two runs over their counts, so that start-up and imports cancel out
    (compiled beforehand: the run that compiled a module would count it)."""
    import compileall
    import os

    paths = (env or {}).get("PYTHONPATH", "").split(os.pathsep)
    folders = [os.path.dirname(os.path.abspath(script))]
    folders += [os.path.join(path, "spyglass") for path in paths if path]
    for folder in folders:
        compileall.compile_dir(folder, quiet=1)
    return (count_instructions(script, *args, large, env=env)
            - count_instructions(script, *args, small, env=env)) / (large - small)


def print_instructions(framework, script, bar):
    """A hello-world request's instructions, plain and instrumented (``script --count MODE
    N`` makes N requests), this checkout's spyglass ahead of the installed one."""
    import os

    checkout = os.path.dirname(os.path.dirname(os.path.abspath(script)))
    counts = {mode: instructions_per_call(script, "--count", mode, env={"PYTHONPATH": checkout})
              for mode in ("plain", "spyglass")}
    plain, ours = counts["plain"], counts["spyglass"]
    print(f"{framework} hello-world (test client), instructions per request: plain {plain:,.0f}, "
          f"spyglass {ours:,.0f} (added {ours - plain:,.0f}) -> ratio {ours / plain:.3f} "
          f"(bar <= {bar}) {verdict(ours / plain, bar)}")
