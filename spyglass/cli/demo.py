"""``spyglass demo``: the whole product in one command.

It starts a collector on a temporary SQLite file, runs uwsgi_examples' Flask app under
uWSGI with the sensor on (service ``demo-shop``) and a second small service beside it
(``inventory.py``, service ``inventory``, also under the sensor), drives a mixed workload
(fast requests, slow SQL, an N+1 loop, outbound calls to the inventory, errors, a slow
request), prints ``spyglass report``, one trace that spans both services, and the UI's
address, and keeps serving the UI until Ctrl-C (or ends there with ``--no-wait``).
Everything it started is stopped on the way out, Ctrl-C included.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

# (path, how many times, what it shows). The example app defines these routes.
WORKLOAD = (
    ("/", 120, "fast requests"),
    ("/users/7", 30, "a route with a parameter"),
    ("/slow-sql", 6, "slow SQL"),
    ("/n-plus-one", 6, "an N+1 query loop"),
    ("/outbound", 10, "calls to the inventory service"),
    ("/error", 8, "unhandled errors"),
    ("/slow", 2, "a slow request"),
)


def demo_command(args):
    app_dir = args.app_dir or find_app_dir()
    if args.app_dir and not os.path.isfile(os.path.join(args.app_dir, "uwsgi.ini")):
        return _fail(f"{args.app_dir} has no uwsgi.ini: give the uwsgi_examples directory")
    if app_dir is None:
        return _fail("cannot find uwsgi_examples/: run it from the spyglass repository root, "
                     "or give --app-dir")
    uwsgi = shutil.which("uwsgi") or _beside_python("uwsgi")
    if uwsgi is None:
        return _fail("uWSGI is not installed: pip install 'spyglass[demo]' (or uwsgi)")
    # Ctrl-C and SIGTERM both end the demo the same way: everything it started is stopped.
    # (Set explicitly: a shell starts background jobs with SIGINT ignored.)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    with Demo(app_dir, uwsgi, args.port, collector_url=getattr(args, "collector", None),
              release=getattr(args, "release", None)) as demo:
        try:
            demo.start()
            demo.drive()
            demo.report()
            demo.show_distributed_trace()
            if args.no_wait:
                return 0
            print(f"\nThe UI is at {demo.collector_url}/ — press Ctrl-C to stop.")
            while demo.collector is None or demo.collector.poll() is None:
                time.sleep(0.5)
            return _fail("the collector stopped unexpectedly")
        except KeyboardInterrupt:
            print("\nstopping …")
            return 0
        except DemoError as exc:
            return _fail(str(exc))


class DemoError(Exception):
    pass


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Demo:
    def __init__(self, app_dir, uwsgi, port, collector_url=None, release=None):
        self.app_dir = app_dir
        self.uwsgi_binary = uwsgi
        self.tmp = tempfile.mkdtemp(prefix="spyglass-demo-")
        self.collector_port = port or free_port()
        self.app_port = free_port()
        self.inventory_port = free_port()
        #: A collector already running (``--collector``): the demo starts none of its own.
        self.external_collector = bool(collector_url)
        self.collector_url = collector_url.rstrip("/") if collector_url else f"http://127.0.0.1:{self.collector_port}"
        self.release = release
        self.app_url = f"http://127.0.0.1:{self.app_port}"
        self.inventory_url = f"http://127.0.0.1:{self.inventory_port}"
        self.collector = None
        self.app = None
        self.inventory = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()
        return False

    def start(self):
        if self.external_collector:
            print(f"sending to the collector at {self.collector_url} …")
            wait_for_http(self.collector_url + "/api/services", "the collector", None, self._log("collector"))
        else:
            db = os.path.join(self.tmp, "demo.db")
            print(f"starting the collector on {self.collector_url} (database {db}) …")
            self.collector = self._spawn("collector", [sys.executable, "-m", "spyglass.cli", "serve",
                                                       "--port", str(self.collector_port),
                                                       "--db", db])
            wait_for_http(self.collector_url + "/api/services", "the collector", self.collector,
                          self._log("collector"))
        sensor = {
            "SPYGLASS_ENDPOINT": self.collector_url,
            "SPYGLASS_METRICS_INTERVAL": "2",
            "SPYGLASS_FLUSH_INTERVAL": "0.5",
        }
        if self.release:
            sensor["SPYGLASS_RELEASE"] = self.release
        # The two services start side by side.
        print(f"starting the inventory service on {self.inventory_url} …")
        self.inventory = self._spawn(
            "inventory", [sys.executable, os.path.join(self.app_dir, "inventory.py")],
            dict(sensor, PORT=str(self.inventory_port), AUTOWRAPT_BOOTSTRAP="flask"),
            cwd=self.app_dir)
        print(f"starting the demo app under uWSGI on {self.app_url} (4 workers) …")
        self.app = self._spawn("app", [self.uwsgi_binary, "--ini",
                                       os.path.join(self.app_dir, "uwsgi.ini")],
                               dict(sensor, PORT=str(self.app_port),
                                    SPYGLASS_SERVICE_NAME="demo-shop",
                                    # /outbound asks the inventory: a trace across two services
                                    EXAMPLE_UPSTREAM=self.inventory_url + "/stock/7"),
                               cwd=os.path.dirname(self.app_dir))
        wait_for_http(self.inventory_url + "/health", "the inventory service", self.inventory,
                      self._log("inventory"))
        wait_for_http(self.app_url + "/", "the demo app", self.app, self._log("app"))

    def drive(self):
        total = sum(count for _, count, _ in WORKLOAD)
        progress = Progress(total)
        requests = [(path, what) for path, count, what in WORKLOAD for _ in range(count)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            for status, what in pool.map(self._request, requests):
                progress.advance(what)
        progress.done()
        # Let the workers export their last batches and a round of runtime metrics.
        time.sleep(3)

    def report(self):
        print()
        subprocess.run([sys.executable, "-m", "spyglass.cli", "report",
                        "--url", self.collector_url, "--since", "15m"], check=False)

    def show_distributed_trace(self):
        """One trace of ``GET /outbound``, as the collector stored it: the services it spans
        (the shop's request, its outbound call, the inventory's request and query)."""
        try:
            found = self._api("/api/traces?" + urllib.parse.urlencode(
                {"service": "demo-shop", "route": "GET /outbound", "since": "15m", "limit": 1}))
            traces = found.get("traces") or []
            trace = self._api(f"/api/traces/{traces[0]['trace_id']}") if traces else None
        except (OSError, ValueError, KeyError) as exc:
            print(f"\n(no distributed trace to show: {exc})")
            return
        if not trace:
            print("\n(no trace of GET /outbound reached the collector)")
            return
        print(f"\nDISTRIBUTED TRACE\n  trace {trace['trace_id']} spans services "
              f"{', '.join(trace['services'])} ({len(trace['spans'])} spans, "
              f"{trace['duration_ms']:.1f} ms): {self.collector_url}/traces/{trace['trace_id']}")

    def _api(self, path):
        with urllib.request.urlopen(self.collector_url + path, timeout=10) as response:
            return json.loads(response.read())

    def stop(self):
        for name, process in (("app", self.app), ("inventory", self.inventory),
                              ("collector", self.collector)):
            if process is None or process.poll() is not None:
                continue
            # uWSGI stops gracefully on SIGINT; the others on SIGTERM.
            process.send_signal(signal.SIGINT if name == "app" else signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _request(self, item):
        path, what = item
        try:
            with urllib.request.urlopen(self.app_url + path, timeout=30) as response:
                response.read()
                return response.status, what
        except urllib.error.HTTPError as exc:
            exc.read()
            return exc.code, what
        except OSError as exc:
            raise DemoError(f"the demo app stopped answering ({exc}):\n{_tail(self._log('app'))}")

    def _log(self, name):
        return os.path.join(self.tmp, f"{name}.log")

    def _spawn(self, name, argv, env=None, cwd=None):
        log = open(self._log(name), "wb")
        environment = {k: v for k, v in os.environ.items()
                       if not k.startswith(("SPYGLASS_", "AUTOWRAPT_"))}
        environment.update(env or {})
        # A process group of its own: Ctrl-C in the terminal is ours to pass on, in order.
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=environment,
                                cwd=cwd, start_new_session=True)


class Progress:
    """A one-line progress bar on a terminal; a line per tenth elsewhere (CI logs)."""

    def __init__(self, total, width=30):
        self.total, self.width, self.done_count = total, width, 0
        self.tty = sys.stdout.isatty()
        self.last_tenth = -1

    def advance(self, what):
        self.done_count += 1
        fraction = self.done_count / self.total
        if self.tty:
            filled = int(fraction * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            sys.stdout.write(f"\r  [{bar}] {self.done_count}/{self.total} {what:<28}")
            sys.stdout.flush()
        elif int(fraction * 10) != self.last_tenth:
            self.last_tenth = int(fraction * 10)
            print(f"  {self.done_count}/{self.total} requests ({what})", flush=True)

    def done(self):
        if self.tty:
            sys.stdout.write("\n")
        print(f"sent {self.total} requests")


def find_app_dir():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for base in (os.getcwd(), here):
        candidate = os.path.join(base, "uwsgi_examples")
        if os.path.isfile(os.path.join(candidate, "uwsgi.ini")):
            return candidate
    return None


def wait_for_http(url, what, process, log_path, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise DemoError(f"{what} exited with status {process.returncode} while starting; "
                            f"the end of its output:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read()
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise DemoError(f"{what} did not answer at {url} within {timeout}s; the end of its "
                    f"output:\n{_tail(log_path)}")


def _tail(path, lines=15):
    # The demo's temporary directory goes when it ends: show the log rather than name it.
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:]).rstrip()
    except OSError:
        return "(no output)"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _beside_python(name):
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    return candidate if os.access(candidate, os.X_OK) else None


def _fail(message):
    print(f"spyglass demo: {message}", file=sys.stderr)
    return 1
