"""A Flask hello-world request through Flask's test client: instrumented / plain.

Bar (DEVELOPERS.md): instrumented / plain <= 1.15. The sensor's export is a sink, as in
bench_span.py: this measures what the request's own thread pays. Peer agents (sentry-sdk,
elastic-apm, ddtrace) are measured the same way when installed, each in its own process.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _util import per_call, verdict  # noqa: E402

N = 5_000
BAR = 1.15


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
            client.get("/users/7")
    return run


def start_spyglass():
    import spyglass
    from spyglass import agent as agent_module
    from spyglass.instrument import install

    running = spyglass.init(service_name="bench", metrics_interval=0)
    running.tracer.export = lambda spans: None
    running.reporter.submit_log = lambda record: None
    import flask

    install(running, flask, "spyglass.instrument.flask")
    return agent_module


PEERS = {
    "sentry-sdk": ("sentry_sdk", "import sentry_sdk\n"
                   "sentry_sdk.init(dsn='http://k@127.0.0.1:9/1', traces_sample_rate=1.0,"
                   " transport=lambda event: None)\n"),
    "elastic-apm": ("elasticapm", "from elasticapm.contrib.flask import ElasticAPM\n"
                    "import elasticapm\n"
                    "ElasticAPM(APP, client=elasticapm.Client(service_name='b', server_url="
                    "'http://127.0.0.1:9', disable_send=True))\n"),
    "ddtrace": ("ddtrace", "from ddtrace import patch\npatch(flask=True)\n"),
}


def peer_ratio(name, module, setup):
    """Measured in a fresh process: plain first, then with the peer set up."""
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r})\n"
            "from bench_flask import hello_app, request_loop, N\nfrom _util import per_call\n"
            "APP = hello_app()\nplain = per_call(request_loop(APP), N)\n"
            + setup.replace("APP", "APP") +
            "APP2 = hello_app()\nAPP = APP2\n" + ("" if "APP)" not in setup else "") +
            "ours = per_call(request_loop(APP2), N)\nprint(ours / plain)\n")
    if "ElasticAPM" in setup:  # instruments one app object: use it
        code = code.replace("APP2 = hello_app()\nAPP = APP2\n", "APP2 = APP\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode != 0:
        return None
    return float(result.stdout.strip().splitlines()[-1])


def main():
    app = hello_app()
    loop = request_loop(app)
    loop(N)  # warm up
    plain = per_call(loop, N)
    start_spyglass()
    loop(N)
    ours = per_call(loop, N)
    ratio = ours / plain
    print(f"flask hello-world (test client): plain {plain * 1e6:.1f} us, "
          f"spyglass {ours * 1e6:.1f} us -> ratio {ratio:.3f} (bar <= {BAR}) {verdict(ratio, BAR)}")
    for name, (module, setup) in PEERS.items():
        if subprocess.run([sys.executable, "-c", f"import {module}"],
                          capture_output=True).returncode != 0:
            print(f"{name}: not installed, skipped")
            continue
        theirs = peer_ratio(name, module, setup)
        print(f"{name}: ratio {theirs:.3f}" if theirs else f"{name}: could not run, skipped")


if __name__ == "__main__":
    main()
