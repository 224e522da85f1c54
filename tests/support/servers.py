"""Real application servers (uWSGI, gunicorn) running uwsgi_examples/app.py under spyglass,
driven with real HTTP, for the deployment tests."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from .processes import clean_env
from .services import free_port, require

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "uwsgi_examples")
BIN = os.path.dirname(sys.executable)


def require_uwsgi():
    path = shutil.which("uwsgi", path=BIN)
    require(path is not None, "uWSGI is not installed in this virtualenv (pip install uwsgi; "
                              "it compiles, so it needs a C compiler and Python's headers)")
    return path


def require_gunicorn():
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        require(False, "gunicorn is not installed (pip install gunicorn)")
    try:
        import flask  # noqa: F401
    except ImportError:
        require(False, "Flask is not installed (pip install flask)")


class Server:
    """One server process tree; its output goes to a file (a full pipe would block it)."""

    def __init__(self, argv, receiver, cwd=ROOT, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile("w+", prefix="spyglass-server-", suffix=".log")
        self.env = clean_env(**{
            "PORT": self.port, "SPYGLASS_ENDPOINT": receiver.url,
            "SPYGLASS_METRICS_INTERVAL": "1", "VIRTUAL_ENV": sys.prefix,
            "EXAMPLE_DATABASE": os.path.join(tempfile.gettempdir(),
                                             f"spyglass-test-{self.port}.sqlite3"),
            **env})  # ``env`` may override any of these
        argv = [arg.replace("{port}", str(self.port)) for arg in argv]
        self.process = subprocess.Popen(argv, cwd=cwd, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def output(self):
        self._log.flush()
        with open(self._log.name, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.output()}")
            try:
                self.get("/")
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout}s:\n{self.output()}")

    def get(self, path, timeout=10):
        """(status, parsed JSON body or text)."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode("utf-8", "replace")

    def drive(self, path, count, concurrency=16):
        """``count`` requests, ``concurrency`` at a time; every response's (status, body)."""
        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(lambda _: self.get(path), range(count)))

    def send(self, signum):
        self.process.send_signal(signum)

    def stop(self, signum=signal.SIGINT, timeout=30):
        """Stop with ``signum`` and wait: a server that does not stop in time has
        deadlocked, and the test fails (after killing what is left)."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"server did not stop within {timeout}s:\n{self.output()}")

    def kill(self):
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except OSError:
            pass
        self.process.wait(10)

    def close(self):
        if self.process.poll() is None:
            self.kill()
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class UwsgiServer(Server):
    """uWSGI with a master FIFO, for its graceful stop ("q"): SIGINT and SIGQUIT are
    brutal, and a worker inside a request then skips every exit hook (uWSGI's rule)."""

    def __init__(self, argv, receiver, **env):
        self.fifo = os.path.join(tempfile.mkdtemp(prefix="spyglass-uwsgi-"), "master.fifo")
        super().__init__([*argv, "--master-fifo", self.fifo], receiver, **env)

    def wait_workers_ready(self, count, timeout=30):
        """The live workers once ``count`` of them can take a graceful stop. A worker
        ignores SIGHUP, and so the master's "q", until it has loaded the app (lazy-apps)
        or run its post-fork hooks; the master would then wait worker-reload-mercy (60 s)
        for it. uWSGI catches SIGHUP from the moment it can."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = {pid for pid in uwsgi_worker_pids(self.output()) if _catches_sighup(pid)}
            if len(ready) >= count:
                return ready
            time.sleep(0.05)
        raise AssertionError(f"fewer than {count} uWSGI workers ready after {timeout}s:\n"
                             f"{self.output()}")

    def quit(self, timeout=30):
        with open(self.fifo, "w") as control:
            control.write("q")
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"uWSGI did not stop within {timeout}s:\n{self.output()}")

    def close(self):
        super().close()
        shutil.rmtree(os.path.dirname(self.fifo), ignore_errors=True)


def _catches_sighup(pid):
    """Whether the live process ``pid`` has a handler for SIGHUP (Linux's /proc)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
    except OSError:  # gone
        return False
    if fields.get("State", "").split()[:1] == ["Z"]:
        return False
    return bool(int(fields["SigCgt"], 16) & (1 << (signal.SIGHUP - 1)))


def uwsgi(receiver, *args, **env):
    return UwsgiServer([require_uwsgi(), *args], receiver, **env)


def uwsgi_script(receiver, script, *args):
    """A script that execs uwsgi (found on PATH, in this virtualenv)."""
    return UwsgiServer([script, *args], receiver, PATH=BIN + os.pathsep + os.environ["PATH"])


def gunicorn(receiver, *args, **env):
    require_gunicorn()
    return Server([sys.executable, "-m", "gunicorn", *args, "app:app"], receiver,
                  cwd=EXAMPLES, AUTOWRAPT_BOOTSTRAP="flask", **env)


def uwsgi_workers_in_order(output):
    """Worker pids in the order uWSGI spawned them (respawns included)."""
    return [int(pid) for pid in re.findall(
        r"spawned uWSGI worker \d+ \((?:new )?pid: (\d+)", output, re.IGNORECASE)]


def uwsgi_worker_pids(output):
    spawned = re.findall(r"spawned uWSGI worker \d+ \(pid: (\d+)", output)
    respawned = re.findall(r"[Rr]espawned uWSGI worker \d+ \(new pid: (\d+)", output)
    return {int(pid) for pid in spawned + respawned}


def gunicorn_worker_pids(output):
    return {int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", output)}


# -- what the receiver got ---------------------------------------------------------------

def request_spans(receiver, route="/"):
    return [span for span in receiver.spans()
            if span.get("kind") == 2 and span["attrs"].get("http.route") == route]


def pids_with(receiver, metric_name):
    return {metric["resource"].get("process.pid") for metric in receiver.metrics()
            if metric["name"] == metric_name}


def histogram_count(receiver, metric_name, **attributes):
    """The total count of a delta histogram's points matching ``attributes``."""
    from .otlp_receiver import decode_attributes

    total = 0
    for metric in receiver.metrics():
        if metric["name"] != metric_name:
            continue
        for point in metric["histogram"]["dataPoints"]:
            attrs = decode_attributes(point.get("attributes", []))
            if all(attrs.get(k) == v for k, v in attributes.items()):
                total += int(point.get("count", 0))
    return total
