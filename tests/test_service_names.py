"""Service names, derived from how a process was started (spyglass/service_name.py): each way
the README starts an app, run for real under the sensor, and the names that reached a real
OTLP receiver, one receiver per process.

The processes all start at once (a module fixture), then each test waits for its own: the
whole file takes about as long as its slowest server takes to start."""
import os
import shutil
import sys
import textwrap

import pytest

from support.otlp_receiver import OTLPReceiver, decode_attributes
from support.servers import EXAMPLES, Server, require_uwsgi
from support.services import require, require_installed
from support.tasks import CONSUMER, broker_url, unique_name
from support.web import APPS

from spyglass.service_name import command_line, derive

BIN = os.path.dirname(sys.executable)
DJANGO_PROJECT = os.path.join(APPS, "djangoproject")
SERVER = 2

JOB = """
import opentracing

with opentracing.tracer.start_active_span("nightly"):
    pass
"""


class Case:
    """One process under the sensor, exporting to a receiver of its own; or why it cannot run."""

    def __init__(self, start, expected, served=True):
        self.start, self.expected, self.served = start, expected, served
        self.receiver = self.process = self.skipped = None

    def launch(self):
        self.receiver = OTLPReceiver().start()
        try:
            self.process = self.start(self.receiver)
        except BaseException as exc:  # a skip (pytest's outcome), or a failure to start
            self.skipped = exc

    def ready(self):
        """The process, once it answers HTTP (a server) or has been started (a worker)."""
        if self.skipped is not None:
            raise self.skipped
        if self.served:
            self.process.wait_ready(timeout=90)
        return self.process

    def close(self):
        if self.process is not None:
            self.process.close()
        self.receiver.stop()


def resources(receiver):
    """The resource of every request that arrived (traces, metrics, logs)."""
    found = []
    for payload in [request.payload for request in list(receiver.requests)
                    if isinstance(request.payload, dict)]:
        for key in ("resourceSpans", "resourceMetrics", "resourceLogs"):
            for item in payload.get(key, []):
                found.append(decode_attributes(item.get("resource", {}).get("attributes", [])))
    return found


def names(receiver):
    return {resource["service.name"] for resource in resources(receiver)}


def pids(receiver):
    return {resource["process.pid"] for resource in resources(receiver)}


def server_span(receiver, timeout=60):
    spans = receiver.wait_for(lambda r: [s for s in r.spans() if s["kind"] == SERVER], timeout)
    assert spans, f"no request span arrived; names so far: {names(receiver)}"
    return spans[0]


# -- how each process starts ----------------------------------------------------------------

def _server(argv, cwd, bootstrap, **env):
    def start(receiver):
        return Server(argv, receiver, cwd=cwd, AUTOWRAPT_BOOTSTRAP=bootstrap,
                      SPYGLASS_FLUSH_INTERVAL="0.2", **env)
    return start


def _uwsgi(receiver):
    # uwsgi_preload.ini (module = app:app) as written, with fewer workers: the app loads
    # in the master, so the name settles in each forked worker.
    return Server([require_uwsgi(), "--ini", os.path.join(EXAMPLES, "uwsgi_preload.ini"),
                   "--processes", "2"], receiver, SPYGLASS_FLUSH_INTERVAL="0.2")


def _program(name):
    path = shutil.which(name, path=BIN)
    require(path is not None, f"{name} is not installed in this virtualenv")
    return path


def _gunicorn(spec, cwd, bootstrap):
    def start(receiver):
        require_installed("gunicorn")
        return _server([_program("gunicorn"), "-b", "127.0.0.1:{port}", spec], cwd,
                       bootstrap)(receiver)
    return start


def _asgi_server(program, *options):
    def start(receiver):
        require_installed("fastapi")
        return _server([_program(program), *options, "app:app"],
                       os.path.join(APPS, "fastapi_quickstart"), "fastapi")(receiver)
    return start


def _flask(*args, **env):
    def start(receiver):
        return _server([_program("flask"), *args, "--port", "{port}"], env.pop("cwd"),
                       "flask", **env)(receiver)
    return start


def _runserver(receiver):
    require_installed("django")
    return _server([sys.executable, "manage.py", "runserver", "127.0.0.1:{port}"],
                   DJANGO_PROJECT, "django", PYTHONPATH=DJANGO_PROJECT)(receiver)


def _manage_command(receiver):
    # manage.py sets DJANGO_SETTINGS_MODULE after the sensor started: the name settles later.
    require_installed("django")
    return Server([sys.executable, "manage.py", "check"], receiver, cwd=DJANGO_PROJECT,
                  AUTOWRAPT_BOOTSTRAP="django", PYTHONPATH=DJANGO_PROJECT)


def _celery(receiver):
    require_installed("celery")
    return Server([_program("celery"), "-A", "taskproj", "worker", "--pool", "solo",
                   "--without-mingle", "--without-gossip", "--loglevel", "INFO"], receiver,
                  cwd=APPS, PYTHONPATH=APPS, AUTOWRAPT_BOOTSTRAP="runtime",
                  TASKPROJ_BROKER=broker_url("redis"), TASKPROJ_QUEUE=unique_name("names"))


def _rq(receiver):
    require_installed("rq")
    url, queue = broker_url("redis"), unique_name("names")
    worker = Server([_program("rq"), "worker", "--url", url, queue], receiver,
                    cwd=APPS, PYTHONPATH=APPS, AUTOWRAPT_BOOTSTRAP="runtime",
                    SPYGLASS_FLUSH_INTERVAL="0.2")
    from redis import Redis
    from rq import Queue

    Queue(queue, connection=Redis.from_url(url)).enqueue("rqjobs.count_words", "three small words")
    return worker


def _testini(directory, text):
    def start(receiver):
        path = os.path.join(directory, "shop.ini")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(textwrap.dedent(text).format(endpoint=receiver.url))
        return Server([_program("spyglass"), "testini", path], receiver, cwd=directory)
    return start


def _script(directory):
    def start(receiver):
        path = os.path.join(directory, "job.py")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(JOB)
        return Server([sys.executable, path], receiver, cwd=directory,
                      AUTOWRAPT_BOOTSTRAP="runtime")
    return start


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    ini_dir = str(tmp_path_factory.mktemp("testini"))
    plain_ini_dir = str(tmp_path_factory.mktemp("testini-plain"))
    script_dir = str(tmp_path_factory.mktemp("script"))
    found = {
        "uwsgi --ini": Case(_uwsgi, "app"),
        "gunicorn app:app": Case(_gunicorn("app:app", EXAMPLES, "flask"), "app"),
        "gunicorn config.wsgi": Case(_gunicorn("config.wsgi:application", DJANGO_PROJECT,
                                               "django"), "config"),
        "uvicorn": Case(_asgi_server("uvicorn", "--port", "{port}"), "app"),
        # the server runs in a child that multiprocessing spawned (python -c …)
        "uvicorn --reload": Case(_asgi_server("uvicorn", "--reload", "--port", "{port}"), "app"),
        "hypercorn": Case(_asgi_server("hypercorn", "-b", "127.0.0.1:{port}"), "app"),
        "flask --app": Case(_flask("--app", "app", "run", cwd=EXAMPLES), "app"),
        "FLASK_APP": Case(_flask("run", cwd=APPS, FLASK_APP="flask_app"), "flask_app"),
        "flask --debug": Case(_flask("--app", "flask_app", "--debug", "run", cwd=APPS),
                              "flask_app"),
        "runserver": Case(_runserver, "config"),
        "manage.py check": Case(_manage_command, "config", served=False),
        "celery": Case(_celery, "taskproj", served=False),
        "rq": Case(_rq, "rq", served=False),
        "testini": Case(_testini(ini_dir, """
            [uwsgi]
            module = shopweb:app
            [spyglass]
            spyglass.endpoint = {endpoint}
        """), "shopweb", served=False),
        "testini plain": Case(_testini(plain_ini_dir, """
            [spyglass]
            spyglass.endpoint = {endpoint}
        """), "shop", served=False),
        "script": Case(_script(script_dir), "job", served=False),
    }
    for case in found.values():
        case.launch()
    yield found
    for case in found.values():
        case.close()


@pytest.mark.parametrize("name", ["uwsgi --ini", "gunicorn app:app", "gunicorn config.wsgi",
                                  "uvicorn", "hypercorn", "flask --app", "FLASK_APP"])
def test_a_server_is_named_by_its_app(cases, name):
    case = cases[name]
    server = case.ready()
    status, _ = server.get("/")
    span = server_span(case.receiver)
    assert span["resource"]["service.name"] == case.expected, server.output()
    assert names(case.receiver) == {case.expected}


@pytest.mark.parametrize("name", ["runserver", "flask --debug", "uvicorn --reload"])
def test_a_reloader_parent_sends_nothing_of_its_own(cases, name):
    case = cases[name]
    server = case.ready()
    server.get("/")
    span = server_span(case.receiver)
    child = span["resource"]["process.pid"]
    assert child != server.process.pid and span["resource"]["service.name"] == case.expected
    # Two rounds of the child's metrics: the parent, started first, would have sent its
    # own process snapshot (a second after start) and metrics by then.
    case.receiver.wait_for(lambda r: sum(1 for resource in resources(r)
                                         if resource["process.pid"] == child) >= 4, 30)
    assert names(case.receiver) == {case.expected}
    assert pids(case.receiver) == {child}, server.output()


@pytest.mark.parametrize("name", ["celery", "rq"])
def test_a_task_worker_is_named_by_its_app(cases, name):
    case = cases[name]
    worker = case.ready()
    arrived = case.receiver.wait_for(lambda r: r.metrics(), 60)
    assert arrived, worker.output()
    if name == "rq":  # the job's run, in the work horse forked for it
        assert case.receiver.wait_for(
            lambda r: [s for s in r.spans() if s["kind"] == CONSUMER], 60), worker.output()
    assert names(case.receiver) == {case.expected}


@pytest.mark.parametrize("name", ["testini", "testini plain", "script", "manage.py check"])
def test_a_command_is_named_by_what_it_runs(cases, name):
    case = cases[name]
    command = case.ready()
    assert command.process.wait(60) == 0, command.output()
    # what it sent before it exited (a trace, or its last metrics at exit)
    assert case.receiver.wait_for(resources, 10), command.output()
    assert names(case.receiver) == {case.expected}


# -- the rules, on command lines not run here -----------------------------------------------

@pytest.mark.parametrize("orig_argv, environ, expected", [
    (["python", "/v/bin/gunicorn", "app:app", "-b", ":80"], {}, "app"),
    (["python", "/v/bin/gunicorn", "-k", "gevent", "-w", "4", "shop.web:app"], {}, "shop.web"),
    (["python", "/v/bin/gunicorn", "config.wsgi:application"],
     {"DJANGO_SETTINGS_MODULE": "mysite.settings.production"}, "mysite"),
    (["python", "-m", "gunicorn", "--preload", "--workers", "4", "app:create_app()"], {}, "app"),
    (["python", "/v/bin/uvicorn", "--host", "0.0.0.0", "--factory", "api.main:build"], {},
     "api.main"),
    (["python", "/v/bin/hypercorn", "-b", "0.0.0.0:80", "--reload", "api:app"], {}, "api"),
    (["python", "/v/bin/flask", "-A", "src/shop/app.py", "run"], {}, "app"),
    (["python", "manage.py", "migrate", "--settings=shop.settings.dev"], {}, "shop"),
    (["python", "manage.py", "send_reminders"], {"DJANGO_SETTINGS_MODULE": "shop.settings"},
     "shop"),
    (["python", "/v/bin/celery", "-A", "proj", "worker"], {"DJANGO_SETTINGS_MODULE": "x.s"},
     "proj"),
    (["python", "/v/bin/celery", "--app=proj.celery:app", "beat"], {}, "proj"),
    (["python", "/v/bin/celery", "-Aproj", "worker"], {}, "proj"),
    (["python", "-m", "celery", "--app", "shop.tasks", "worker"], {}, "shop"),
    (["python", "/v/bin/celery", "worker"], {}, "celery"),
    (["python", "/v/bin/rq", "worker", "--burst"], {}, "rq"),
    (["python", "/v/bin/spyglass", "check"], {}, "spyglass"),
    (["python", "-W", "error", "-X", "dev", "job.py", "--dry-run"], {}, "job"),
    (["python", "-m", "mytool"], {"FLASK_APP": "web.py"}, "web"),
    (["python", "-m", "http.server"], {}, "http.server"),
    (["python", "-c", "pass"], {}, "python"),
])
def test_the_rules_in_order(orig_argv, environ, expected):
    assert derive(*command_line(orig_argv, argv=["-c"]), environ) == expected


def test_a_spawned_child_is_named_by_the_command_line_its_parent_gave_it():
    spawned = ["python", "-c", "from multiprocessing.spawn import spawn_main; spawn_main()",
               "--multiprocessing-fork"]
    assert command_line(spawned, argv=["-c", "--multiprocessing-fork"])[0] == ""
    # multiprocessing has set sys.argv to the parent's
    assert derive(*command_line(spawned, argv=["/v/bin/uvicorn", "--workers", "2", "app:app"]),
                  {}) == "app"


@pytest.mark.parametrize("options, expected", [
    ({"module": b"app:app", "ini": b"/srv/shop.ini"}, "app"),
    ({"wsgi-file": b"/srv/mysite/wsgi.py"}, "mysite"),
    ({"mount": [b"/=shop.web:app", b"/admin=admin:app"]}, "shop.web"),
    ({"ini": b"/srv/shop.ini:production"}, "shop"),
    ({"http-socket": b":8000"}, "uwsgi"),
])
def test_uwsgi_options(options, expected):
    assert derive("", [], {}, options) == expected
