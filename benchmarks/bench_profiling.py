"""What profiling costs: the Flask and Django hello-world request ratios (instrumented /
plain) with profiling on at the default ``profiling_hz``, against off; and the sampler's
own CPU with 8 idle threads.

Bars (issue 19): the request ratio rises by at most 0.03; the sampler takes under 1% of
one core with 8 idle threads. There the sampler dozes (nothing changes from one tick to the
next); what it takes awake, ticking at the full rate, is printed beside it.

Each framework runs in a process of its own where plain requests, spyglass with profiling
off (the plain tracer, no sampler thread) and spyglass with profiling on (the profiling
tracer, the sampler thread running) take turns round after round, timed by the process's
CPU time: the sampler thread's share counts, other processes' load does not. The rise is
the median of the rounds' own rises: on a busy 2-core machine the best of each differ by
a few hundredths either way from one run to the next. The sensor
exports to a sink, as in bench_flask.py; the profiler's samples go through the reporter's
queue, whose export is a sink too.

``--instructions`` counts instructions instead (valgrind's callgrind, which simulates one
CPU: the same counts on a loaded machine; the main thread's only): per Flask hello-world
request, plain, with profiling off and with the profiling tracer (each the difference of
two runs of different request counts, so start-up cancels out), and per sampler tick as
its thread runs one: with 8 idle threads and one inside a traced request, 30 frames deep
(the heap frozen out of the collector's sight: where a full collection falls would vary
from run to run). The sampler's share of a core at the default rate is its thread's own
CPU time over a few seconds, kept from dozing as while a request runs (the scheduler's
count for that thread, not the wall clock; other processes' load still moves it, by the
cold caches each wake-up finds), or, with
``--core-ips N``, its instructions per second over N; the request ratio's rise is
on x (1 + that share) - off, against plain.
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _util import instructions_per_call, verdict  # noqa: E402

RATIO_BAR = 0.03
CPU_BAR = 1.0  # percent of one core
IDLE_THREADS = 8
REQUEST_DEPTH = 30  # frames: about a Flask view's, in a WSGI server's thread
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
    profiler = agent._bench_profiler = Profiler(agent.config, reporter)

    def switch(on, sampler=True):
        if on:
            agent._tracer = profiling_tracer
            if sampler and profiler._thread is None:
                profiler.start()
        else:
            profiler.stop()
            agent._tracer = plain_tracer
    return agent, switch


def instructions_flask(mode, number):
    """``number`` Flask requests after a warm-up, ``mode`` plain, off, or on (the profiling
    tracer; no sampler thread, whose ticks ``instructions_tick`` counts apart)."""
    import bench_flask
    from spyglass.instrument import install

    agent, switch = start_spyglass()
    import flask

    install(agent, flask, "spyglass.instrument.flask")
    app = bench_flask.hello_app()
    run = bench_flask.request_loop(bench_flask.unpatched(app) if mode == "plain" else app)
    if mode == "on":
        switch(True, sampler=False)
    run(50)  # warm-up: caches, the first request's imports
    run(number)


def instructions_tick(number):
    """``number`` sampler ticks, run on this thread as the sampler thread runs them (itself
    and spyglass's threads left out), with 8 idle threads and one inside a traced request,
    REQUEST_DEPTH frames deep (asleep in a function of its own: sampled as running)."""
    import gc
    import threading

    agent, switch = start_spyglass()
    release = threading.Event()
    for _ in range(IDLE_THREADS):
        threading.Thread(target=release.wait, daemon=True).start()
    switch(True, sampler=False)
    in_request = threading.Event()

    def request(depth=REQUEST_DEPTH - 4):  # under Thread.run, _bootstrap_inner, _bootstrap
        if depth:
            return request(depth - 1)
        with agent.tracer.start_active_span("request"):
            in_request.set()
            time.sleep(3600)  # a daemon thread: it ends with the process

    threading.Thread(target=request, daemon=True).start()
    in_request.wait()
    profiler = agent._bench_profiler
    profiler._note_own_threads()
    profiler._last_sweep_ns = 1 << 62  # no sweep (wall-clock driven): ticks alike
    me = threading.get_ident()
    # The heap so far out of the collector's sight: which thread's allocation sets off a
    # full collection, and when, varies from run to run (the sampler's own young objects
    # are still collected, on whichever thread).
    gc.collect()
    gc.freeze()
    for _ in range(50 + number):  # a warm-up, then the ticks counted
        profiler._tick(me)
    release.set()


def per_unit(*args, small=200, large=1200):
    """Instructions per request (or tick): the difference of two runs over their counts."""
    return instructions_per_call(__file__, *args, small=small, large=large)


def instructions_main(core_ips):
    from spyglass.config import load

    hz = load(environ={}).profiling_hz
    per_request = {mode: per_unit("instr-flask", mode) for mode in ("plain", "off", "on")}
    per_tick = per_unit("instr-tick", small=200, large=2200)
    if core_ips is None:  # awake, as while a request runs: no doze
        percent, _ = in_a_process_of_its_own("cpu-awake")
        share, how = percent / 100, "its thread's CPU time awake, measured"
    else:
        share, how = per_tick * hz / core_ips, f"at {core_ips:.1e} instructions/s"
    off, on = per_request["off"] / per_request["plain"], per_request["on"] / per_request["plain"]
    rise = on * (1 + share) - off
    print(f"flask hello-world, instructions per request: plain {per_request['plain']:,.0f}, "
          f"profiling off {per_request['off']:,.0f} (ratio {off:.3f}), profiling tracer "
          f"{per_request['on']:,.0f} (ratio {on:.3f})")
    print(f"sampler: {per_tick:,.0f} instructions per tick (1 thread in a request, {REQUEST_DEPTH} "
          f"frames deep, {IDLE_THREADS} idle); "
          f"at {hz:g} Hz {per_tick * hz / 1e6:.2f} M instructions/s; {100 * share:.3f}% of a core "
          f"({how})")
    print(f"request ratio's rise with profiling on: {rise:+.4f} (bar <= +{RATIO_BAR}) "
          f"{verdict(rise, RATIO_BAR)}")


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


def sampler_cpu(awake=False):
    """Percent of one core the sampler thread used over CPU_SECONDS, with IDLE_THREADS
    threads waiting and the main thread asleep; ``awake``: kept from dozing."""
    import threading

    import psutil

    from spyglass.profile import sampler as sampler_module

    if awake:
        sampler_module.MAX_DOZE_PERIODS = 1
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
    awake, _ = in_a_process_of_its_own("cpu-awake")
    print(f"sampler at {hz:g} Hz with {IDLE_THREADS} idle threads: {percent:.2f}% of one core "
          f"(bar < {CPU_BAR}%) {verdict(percent, CPU_BAR)}; kept awake (a tick every period, "
          f"as when a stack changes): {awake:.2f}%")


if __name__ == "__main__":
    if sys.argv[1:2] == ["instr-flask"]:
        instructions_flask(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["instr-tick"]:
        instructions_tick(int(sys.argv[2]))
    elif sys.argv[1:2] in (["flask"], ["django"], ["cpu"], ["cpu-awake"]):
        print(repr({"flask": flask_figures, "django": django_figures, "cpu": sampler_cpu,
                    "cpu-awake": lambda: sampler_cpu(awake=True)}[sys.argv[1]]()))
    else:
        parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        parser.add_argument("--instructions", action="store_true",
                            help="count instructions under valgrind instead of timing")
        parser.add_argument("--core-ips", type=float, default=None,
                            help="instructions a core runs per second, for the sampler's share "
                                 "(default: the sampler thread's CPU time, measured)")
        args = parser.parse_args()
        instructions_main(args.core_ips) if args.instructions else main()
