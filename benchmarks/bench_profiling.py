"""What profiling costs: the Flask and Django hello-world request ratios (instrumented /
plain) with profiling on at the default ``profiling_hz``, against off; and the sampler's
own CPU with 8 idle threads.

Bars (issue 19): the request ratio rises by at most 0.03; the sampler takes under 1% of
one core with 8 idle threads.

Each framework runs in a process of its own where plain requests, spyglass with profiling
off (the plain tracer, no sampler thread) and spyglass with profiling on (the profiling
tracer, the sampler thread running) take turns round after round, timed by the process's
CPU time: the sampler thread's share counts, other processes' load does not. The rise is
the median of the rounds' own rises: on a busy 2-core machine the best of each differ by
a few hundredths either way from one run to the next. The sensor
exports to a sink, as in bench_flask.py; the profiler's samples go through the reporter's
queue, whose export is a sink too.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _util import verdict  # noqa: E402

RATIO_BAR = 0.03
CPU_BAR = 1.0  # percent of one core
IDLE_THREADS = 8
CPU_SECONDS = 5.0


def start_spyglass():
    """The agent with profiling off, and what turns it on: (agent, switch(on))."""
    import atexit

    import spyglass
    from spyglass.profile import registry
    from spyglass.profile.sampler import Profiler

    agent = spyglass.init(service_name="bench", metrics_interval=0)
    reporter = agent.reporter
    atexit.unregister(reporter.at_exit)
    reporter._export = lambda kind, items, deadline: True
    reporter.submit_log = lambda record: None
    sink = lambda trace: None  # noqa: E731
    plain_tracer = agent.tracer
    plain_tracer.export = plain_tracer.export_lone_root = sink
    export, export_lone_root = registry.exporters(sink, sink)
    profiling_tracer = registry.ProfilingTracer(export=export,
                                                export_lone_root=export_lone_root)
    profiler = Profiler(agent.config, reporter)

    def switch(on):
        if on:
            agent._tracer = profiling_tracer
            if profiler._thread is None:
                profiler.start()
        else:
            profiler.stop()
            agent._tracer = plain_tracer
    return agent, switch


def turns(plain_loop, loop, switch, number, rounds=21):
    """Plain, profiling off and profiling on, taking turns, timed by the process's CPU:
    {"plain", "off", "on": best seconds per request, "rise": the median over the rounds of
    (on - off) / plain, each round's three runs a few hundred milliseconds apart}."""
    runs = {"plain": (False, plain_loop), "off": (False, loop), "on": (True, loop)}
    best = dict.fromkeys(runs, float("inf"))
    rises = []
    for round_number in range(rounds + 1):
        taken = {}
        for name, (on, run) in runs.items():
            switch(on)
            start = time.process_time()
            run(number)
            taken[name] = (time.process_time() - start) / number
        if round_number:  # the first is a warm-up
            for name, seconds in taken.items():
                best[name] = min(best[name], seconds)
            rises.append((taken["on"] - taken["off"]) / taken["plain"])
    rises.sort()
    return dict(best, rise=rises[len(rises) // 2])


def flask_figures():
    import bench_flask
    from spyglass.instrument import install

    agent, switch = start_spyglass()
    import flask

    install(agent, flask, "spyglass.instrument.flask")
    plain = bench_flask.request_loop(bench_flask.unpatched(bench_flask.hello_app()))
    return turns(plain, bench_flask.request_loop(bench_flask.hello_app()), switch,
                 bench_flask.N // 4)


def django_figures():
    import bench_django
    from spyglass.instrument import install

    bench_django.setup_django()
    plain = bench_django.request_loop()
    plain(bench_django.N)  # its handler loads its middleware now, unpatched
    agent, switch = start_spyglass()
    import django

    install(agent, django, "spyglass.instrument.django")
    return turns(plain, bench_django.request_loop(), switch, bench_django.N // 4)


def sampler_cpu():
    """Percent of one core the sampler thread used over CPU_SECONDS, with IDLE_THREADS
    threads waiting and the main thread asleep."""
    import threading

    import psutil

    agent, switch = start_spyglass()
    release = threading.Event()
    waiting = [threading.Thread(target=release.wait, daemon=True) for _ in range(IDLE_THREADS)]
    for thread in waiting:
        thread.start()
    switch(True)
    sampler = [t for t in threading.enumerate() if t.name == "spyglass-profiler"][0]

    def cpu_seconds():
        try:  # the scheduler's count, in nanoseconds (psutil's is in 10 ms clock ticks)
            with open(f"/proc/self/task/{sampler.native_id}/schedstat") as schedstat:
                return int(schedstat.read().split()[0]) / 1e9
        except OSError:
            pass
        for thread in psutil.Process().threads():
            if thread.id == sampler.native_id:
                return thread.user_time + thread.system_time
        raise RuntimeError("no sampler thread")

    time.sleep(0.5)
    before, start = cpu_seconds(), time.monotonic()
    time.sleep(CPU_SECONDS)
    used, elapsed = cpu_seconds() - before, time.monotonic() - start
    switch(False)
    release.set()
    return 100.0 * used / elapsed, agent.config.profiling_hz


def in_a_process_of_its_own(what):
    result = subprocess.run([sys.executable, __file__, what], capture_output=True, text=True,
                            timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"{what}: {result.stderr}")
    return eval(result.stdout.strip().splitlines()[-1])  # a dict or tuple printed below


def main():
    for name in ("flask", "django"):
        best = in_a_process_of_its_own(name)
        off, on = best["off"] / best["plain"], best["on"] / best["plain"]
        print(f"{name} hello-world: plain {best['plain'] * 1e6:.1f} us, profiling off "
              f"{best['off'] * 1e6:.1f} us (ratio {off:.3f}), on {best['on'] * 1e6:.1f} us "
              f"(ratio {on:.3f}); the ratio's rise, median of the rounds: "
              f"{best['rise']:+.3f} (bar <= +{RATIO_BAR}) {verdict(best['rise'], RATIO_BAR)}")
    percent, hz = in_a_process_of_its_own("cpu")
    print(f"sampler at {hz:g} Hz with {IDLE_THREADS} idle threads: {percent:.2f}% of one core "
          f"(bar < {CPU_BAR}%) {verdict(percent, CPU_BAR)}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(repr({"flask": flask_figures, "django": django_figures,
                    "cpu": sampler_cpu}[sys.argv[1]]()))
    else:
        main()
