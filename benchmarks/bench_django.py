"""A Django hello-world request through Django's test client: instrumented / plain.

Same method as bench_flask.py (export to a sink; the bar there, <= 1.15, is the aim).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _util import per_call, verdict  # noqa: E402

N = 3_000
BAR = 1.15


def setup_django():
    import django
    from django.conf import settings
    from django.http import HttpResponse
    from django.urls import path

    def hello(request, uid):
        return HttpResponse("hello")

    settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, MIDDLEWARE=[],
                       SECRET_KEY="bench", INSTALLED_APPS=[])
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


def main():
    import spyglass
    from spyglass.instrument import install

    setup_django()
    loop = request_loop()
    loop(N)
    plain = per_call(loop, N)
    running = spyglass.init(service_name="bench", metrics_interval=0)
    running.tracer.export = lambda spans: None
    import django

    install(running, django, "spyglass.instrument.django")
    loop = request_loop()  # a new handler: load_middleware runs again, now patched
    loop(N)
    ours = per_call(loop, N)
    ratio = ours / plain
    print(f"django hello-world (test client): plain {plain * 1e6:.1f} us, "
          f"spyglass {ours * 1e6:.1f} us -> ratio {ratio:.3f} (bar <= {BAR}) {verdict(ratio, BAR)}")


if __name__ == "__main__":
    main()
