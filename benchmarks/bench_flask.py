"""A Flask hello-world request through Flask's test client: instrumented / plain.

Bar (DEVELOPERS.md): instrumented / plain <= 1.08. The sensor's export is a sink, as in
bench_span.py: this measures what the request's own thread pays. Plain and instrumented
requests take turns in one process, on two apps (the plain one with Flask's own methods).
Peer agents (sentry-sdk, elastic-apm, ddtrace) are measured when installed, each in its
own process.

``--instructions`` counts the main thread's instructions per request instead, plain and
instrumented, each in processes of their own under callgrind (see
``_util.instructions_per_call``): the same figures however loaded the machine is, for
comparing two commits. This checkout's spyglass is counted, not the installed one.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _util import (PEER_ENV, SENTRY_WITH_SINK, best_per_call_interleaved,  # noqa: E402
                   counted, export_to_sink, print_instructions, verdict,
                   without_periodic_work)

N = 5_000
BAR = 1.08


def hello_app():
    from flask import Flask

    app = Flask("hello")

    @app.route("/users/<int:uid>")
    def hello(uid):
        return "hello"

    return app


def request_loop(app):
    client = app.test_client()

    def run(number):
        for _ in range(number):
            client.get("/users/7").close()  # as a WSGI server closes every response
    return run


def start_spyglass():
    import spyglass
    from spyglass import agent as agent_module

    running = spyglass.init(service_name="bench", metrics_interval=0)
    export_to_sink(running)
    running.reporter.submit_log = lambda record: None
    import flask  # noqa: F401  (patched by its import hook)

    return agent_module


# Each peer agent set up as its docs say, exporting to a sink (or nowhere) as ours does:
# (importable module, set-up code run before ``app = hello_app()``, code run after it).
PEERS = {
    "sentry-sdk": ("sentry_sdk", SENTRY_WITH_SINK, ""),
    "elastic-apm": ("elasticapm", "", (
        "import elasticapm\n"
        "from elasticapm.contrib.flask import ElasticAPM\n"
        "ElasticAPM(app, client=elasticapm.Client(service_name='bench', server_url="
        "'http://127.0.0.1:9', disable_send=True, central_config=False, metrics_interval='0s'))\n"
    )),
    "ddtrace": ("ddtrace", "from ddtrace import patch\npatch(flask=True)\n", ""),
}


def peer_ratio(before, after):
    """Measured in a fresh process: plain first, then a new app with the peer set up."""
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r})\n"
            "from bench_flask import hello_app, request_loop, N\n"
            "from _util import per_call\n"
            "loop = request_loop(hello_app())\nloop(N)\nplain = per_call(loop, N)\n"
            + before + "app = hello_app()\n" + after +
            "loop = request_loop(app)\nloop(N)\ntheirs = per_call(loop, N)\n"
            "print(theirs / plain)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, **PEER_ENV}, timeout=600)
    if result.returncode != 0:
        return None, result.stderr.strip().splitlines()[-1:]
    return float(result.stdout.strip().splitlines()[-1]), None


def unpatched(app):
    """``app`` with Flask's own ``wsgi_app`` and ``full_dispatch_request`` rather than
    spyglass's (which patches the Flask class): the plain side, in the same process."""
    import flask

    for name in ("wsgi_app", "full_dispatch_request"):
        original = getattr(flask.Flask, name).__wrapped__
        setattr(app, name, original.__get__(app))
    return app


def main():
    start_spyglass()
    loops = {"plain": (request_loop(unpatched(hello_app())), N),
             "spyglass": (request_loop(hello_app()), N)}
    best = best_per_call_interleaved(loops)  # plain and instrumented requests take turns
    plain, ours = best["plain"], best["spyglass"]
    ratio = ours / plain
    print(f"flask hello-world (test client): plain {plain * 1e6:.1f} us, "
          f"spyglass {ours * 1e6:.1f} us -> ratio {ratio:.3f} (bar <= {BAR}) {verdict(ratio, BAR)}")
    for name, (module, before, after) in PEERS.items():
        if subprocess.run([sys.executable, "-c", f"import {module}"],
                          capture_output=True).returncode != 0:
            print(f"{name}: not installed, skipped")
            continue
        theirs, error = peer_ratio(before, after)
        print(f"{name}: ratio {theirs:.3f}" if theirs else f"{name}: could not run: {error}")


def counted_loop(mode, number):
    """Under callgrind: ``number`` requests after a warm-up, ``mode`` plain or spyglass."""
    without_periodic_work(start_spyglass().get())
    app = hello_app()
    run = request_loop(unpatched(app) if mode == "plain" else app)
    counted(run, number)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--count"]:
        counted_loop(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["--instructions"]:
        print_instructions("flask", __file__, BAR)
    else:
        main()
