"""A Django hello-world request through Django's test client: instrumented / plain.

Same method as bench_flask.py (export to a sink, plain and instrumented requests taking
turns in one process: the plain client's handler built before spyglass patched Django; the
bar there, <= 1.08, is the aim; ``--instructions`` counts instructions per request).
Peer agents (sentry-sdk, elastic-apm, ddtrace) are measured when installed: each in a fresh
process set up as its docs say, against a plain run in another fresh process.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _util import (PEER_ENV, SENTRY_WITH_SINK, best_per_call_interleaved,  # noqa: E402
                   counted, export_to_sink, print_instructions, verdict,
                   without_periodic_work)

N = 3_000
BAR = 1.08


def setup_django(installed_apps=(), middleware=(), **extra_settings):
    import django
    from django.conf import settings
    from django.http import HttpResponse
    from django.urls import path

    def hello(request, uid):
        return HttpResponse("hello")

    settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
                       MIDDLEWARE=list(middleware), SECRET_KEY="bench",
                       INSTALLED_APPS=list(installed_apps), **extra_settings)
    global urlpatterns
    urlpatterns = [path("users/<int:uid>", hello)]
    django.setup()


def request_loop():
    from django.test import Client

    client = Client()

    def run(number):
        for _ in range(number):
            client.get("/users/7")
    return run


# (importable module, code run before setup_django, keyword arguments of setup_django)
PEERS = {
    "sentry-sdk": ("sentry_sdk", SENTRY_WITH_SINK, ""),
    "elastic-apm": ("elasticapm", "", (
        "installed_apps=['elasticapm.contrib.django'], "
        "middleware=['elasticapm.contrib.django.middleware.TracingMiddleware'], "
        "ELASTIC_APM={'SERVICE_NAME': 'bench', 'SERVER_URL': 'http://127.0.0.1:9', "
        "'DISABLE_SEND': True, 'CENTRAL_CONFIG': False, 'METRICS_INTERVAL': '0s', "
        "'DEBUG': True}"
    )),
    "ddtrace": ("ddtrace", "from ddtrace import patch\npatch(django=True)\n", ""),
}


def measured_in_a_fresh_process(before="", settings=""):
    """Per-request seconds of the hello-world loop in a new interpreter, or an error."""
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r})\n"
            "import bench_django\nfrom _util import per_call\n" + before +
            f"bench_django.setup_django({settings})\n"
            "loop = bench_django.request_loop()\nloop(bench_django.N)\n"
            "print(per_call(loop, bench_django.N))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, **PEER_ENV}, timeout=600)
    if result.returncode != 0:
        return None, result.stderr.strip().splitlines()[-1:]
    return float(result.stdout.strip().splitlines()[-1]), None


def compare_peers():
    plain = None
    for name, (module, before, settings) in PEERS.items():
        if subprocess.run([sys.executable, "-c", f"import {module}"],
                          capture_output=True).returncode != 0:
            print(f"{name}: not installed, skipped")
            continue
        if plain is None:
            plain, _ = measured_in_a_fresh_process()
        theirs, error = measured_in_a_fresh_process(before, settings)
        print(f"{name}: ratio {theirs / plain:.3f}" if theirs and plain
              else f"{name}: could not run: {error}")


def plain_and_instrumented():
    """The plain client's loop (its handler built before spyglass patched Django) and the
    instrumented one's."""
    import spyglass

    setup_django()
    plain_loop = request_loop()
    plain_loop(50)  # its handler loads its middleware now, unpatched
    running = spyglass.init(service_name="bench", metrics_interval=0)
    export_to_sink(running)
    running.reporter.submit_log = lambda record: None  # django: patched by its import hooks
    return plain_loop, request_loop()  # a new handler: patched load_middleware


def counted_loop(mode, number):
    """Under callgrind: ``number`` requests after a warm-up, ``mode`` plain or spyglass."""
    import spyglass

    plain_loop, instrumented_loop = plain_and_instrumented()
    without_periodic_work(spyglass.agent.get())
    run = plain_loop if mode == "plain" else instrumented_loop
    counted(run, number)


def main():
    plain_loop, instrumented_loop = plain_and_instrumented()
    loops = {"plain": (plain_loop, N), "spyglass": (instrumented_loop, N)}
    best = best_per_call_interleaved(loops)  # plain and instrumented requests take turns
    plain, ours = best["plain"], best["spyglass"]
    ratio = ours / plain
    print(f"django hello-world (test client): plain {plain * 1e6:.1f} us, "
          f"spyglass {ours * 1e6:.1f} us -> ratio {ratio:.3f} (bar <= {BAR}) {verdict(ratio, BAR)}")
    compare_peers()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--count"]:
        counted_loop(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["--instructions"]:
        print_instructions("django", __file__, BAR)
    else:
        main()
