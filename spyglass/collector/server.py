"""The HTTP side of ``spyglass serve``: OTLP receiver, JSON API, web UI, static files.

The standard library's HTTP server, on a bounded pool of threads (``connections``), serves
it all: ingest time goes to decoding and the store, not to HTTP (a request of 512 spans
spends well under 1% of its time in the server), so a framework would add a dependency and
buy nothing. HTTP/1.1 keep-alive is on, which is what OTLP exporters use.
"""
import base64
import hmac
import json
import logging
import mimetypes
import os
import re
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from . import otlp_json, otlp_profiles, otlp_proto, wire
from .api import MAX_POST_BYTES as MAX_API_POST_BYTES
from .api import Api, ApiError
from .connections import Busy, ByteBudget, PooledHTTPServer
from .store import StoreError, StoreRejected, open_store
from .ui import Ui

logger = logging.getLogger("spyglass.collector")

STATIC_DIR = Path(__file__).parent / "static"
_SIGNALS = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs",
            "/v1development/profiles": "profiles"}
_DECODERS = {wire.JSON: otlp_json, wire.PROTOBUF: otlp_proto}
_PROFILE_DECODERS = {wire.JSON: otlp_profiles.JSON, wire.PROTOBUF: otlp_profiles.PROTOBUF}
# A refused body is drained for at most this long, and this much, before the connection closes.
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024 * 1024
#: How long a request may wait for room in the decoding budget before it gets a 503.
DECODE_WAIT_SECONDS = 10.0
_DIGITS = re.compile(r"[0-9]{1,18}")

_GRPC_CODES = {400: 3, 401: 16, 404: 5, 411: 3, 413: 8, 415: 3, 500: 13, 503: 14}  # google.rpc.Code


class Reply:
    """What a request gets back."""

    def __init__(self, status, body=b"", content_type="application/json", headers=None):
        self.status, self.body, self.content_type = status, body, content_type
        self.headers = headers or {}


class Collector:
    """Everything but the sockets: ingest, API and UI over one store."""

    def __init__(self, config, store):
        self.config = config
        self.store = store
        self.api = Api(store)
        self.ui = Ui(self.api)
        # Decoding takes memory in proportion to the body: bodies being decoded at once may
        # add up to two of the largest a sender may send.
        self.decoding = ByteBudget(2 * config.max_body_bytes)

    def authorized(self, authorization, api_key_header):
        """Whether a request carries the configured API key (always, when none is set).

        The key may come as ``X-API-Key``, ``Authorization: Bearer KEY`` (what OTLP
        exporters' header settings send) or as the password of Basic auth (what a browser
        asks for).
        """
        expected = self.config.api_key
        if not expected:
            return True
        offered = api_key_header or ""
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() == "bearer":
            offered = credentials.strip()
        elif scheme.lower() == "basic":
            try:
                offered = base64.b64decode(credentials.strip()).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                offered = ""
        return hmac.compare_digest(offered.encode(), expected.encode())

    def ingest(self, signal_name, content_type, content_encoding, body):
        """Decode one export request and store it whole; a refusal stores nothing."""
        fmt = wire.JSON
        try:
            fmt = wire.content_format(content_type)
            decoder = (_PROFILE_DECODERS if signal_name == "profiles" else _DECODERS)[fmt]
            data = wire.inflate(body, content_encoding, self.config.max_body_bytes)
            del body
            with self.decoding.hold(len(data), DECODE_WAIT_SECONDS):
                try:
                    batch = decoder.decode(signal_name, data)
                except (RecursionError, ValueError, TypeError, OverflowError) as exc:
                    raise wire.BadRequest(400, f"could not decode the {signal_name} request: {exc}") from None
                del data
                try:
                    self.store.write(batch)
                except StoreRejected as exc:  # the transaction rolled back: nothing of it is kept
                    raise wire.BadRequest(400, str(exc)) from None
        except wire.BadRequest as exc:
            return self.refuse(exc.status, exc.reason, fmt)
        except Busy:
            return self.refuse(503, "the collector is busy decoding other requests: retry later", fmt,
                               {"Retry-After": "1"})
        except StoreError as exc:  # unreachable, locked or full: the sender should retry later
            logger.warning("store unavailable: %s", exc)
            return self.refuse(503, f"store unavailable: {exc}", fmt, {"Retry-After": "5"})
        return Reply(200, decoder.success(signal_name, batch), fmt)

    @staticmethod
    def refuse(status, reason, fmt=wire.JSON, headers=None):
        body = _DECODERS[fmt].failure(_GRPC_CODES.get(status, 2), reason)
        return Reply(status, body, fmt, headers)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "spyglass-collector"
    timeout = 15  # a client stalled this long mid-request frees its thread
    # Headers and body go out in two writes; with Nagle on, the second waits for the
    # client's delayed ACK (40 ms) and a keep-alive sender idles on every request.
    disable_nagle_algorithm = True

    @property
    def collector(self):
        return self.server.collector

    def do_POST(self):
        self._guarded(self._post)

    def do_GET(self):
        self._guarded(self._get)

    def do_HEAD(self):  # a GET without the body: _send leaves it out
        self._guarded(self._get)

    def _guarded(self, method):
        """Run ``method``; a bug in it costs this request a 500, not the connection or the server."""
        try:
            method()
        except StoreRejected as exc:  # a parameter the database cannot take (a number past int64)
            self._send(Reply(400, Api.encode({"error": str(exc)})))
        except StoreError as exc:  # a query met a database that is away: ask to come back later
            logger.warning("store unavailable: %s", exc)
            self._send(Reply(503, Api.encode({"error": f"store unavailable: {exc}"}), headers={"Retry-After": "5"}))
        except Exception:
            logger.exception("%s %s failed", self.command, self.path)
            self.close_connection = True
            self._send(Reply(500, b'{"error": "internal error: see the collector\'s log"}'))

    def _post(self):
        path = urlsplit(self.path).path.rstrip("/")
        if path == "/api" or path.startswith("/api/"):
            return self._send(self._api_post(unquote(path)))
        signal_name = _SIGNALS.get(path)
        if signal_name is None:
            self._discard_body()
            return self._send(Collector.refuse(404, f"no OTLP endpoint at {path}: use /v1/traces, "
                                                    f"/v1/metrics, /v1/logs or "
                                                    f"/v1development/profiles"))
        if not self._authorized():
            self._discard_body()
            return self._send(Collector.refuse(401, "missing or wrong API key"))
        body = self._read_body()
        if isinstance(body, Reply):
            return self._send(body)
        self._send(self.collector.ingest(signal_name, self.headers.get("Content-Type"),
                                         self.headers.get("Content-Encoding"), body))

    def _get(self):
        length = self._content_length()
        if isinstance(length, Reply):
            return self._send(length)
        if length:
            self._discard_body(length)
        url = urlsplit(self.path)
        path, query = unquote(url.path), dict(parse_qsl(url.query))
        if path.startswith("/static/"):
            return self._send(_static(path[len("/static/"):]))
        if not self._authorized():
            return self._send(Reply(401, b'{"error": "missing or wrong API key"}',
                                    headers={"WWW-Authenticate": 'Basic realm="spyglass"'}))
        if path == "/api" or path.startswith("/api/"):
            return self._send(self._api(path, query))
        # A redirect comes with its Location header
        status, content_type, html, *headers = self.collector.ui.page(path, query, self._endpoint())
        self._send(Reply(status, html, content_type, headers=headers[0] if headers else None))

    def _endpoint(self):
        """Where this collector listens, as the UI's hints name it: the address this
        connection reached (a collector bound to every interface listens on that one too)."""
        host, port = self.connection.getsockname()[:2]
        if host.startswith("::ffff:") and "." in host:  # IPv4 on a socket bound to "::"
            host = host[len("::ffff:"):]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def _api(self, path, query):
        try:
            status, payload = self.collector.api.handle(path, query)
        except ApiError as exc:
            status, payload = exc.status, {"error": exc.reason}
        return Reply(status, Api.encode(payload))

    def _api_post(self, path):
        """A change through the API (an error group's state): JSON in, JSON out."""
        if not self._authorized():
            self._discard_body()
            return Reply(401, b'{"error": "missing or wrong API key"}')
        body = self._read_body(MAX_API_POST_BYTES)
        if isinstance(body, Reply):  # refused: the API answers in its own form
            return Reply(body.status, Api.encode({"error": _reason(body)}), headers=body.headers)
        try:
            status, payload = self.collector.api.handle_post(path, self.headers.get("Content-Type"), body)
        except ApiError as exc:
            status, payload = exc.status, {"error": exc.reason}
        return Reply(status, Api.encode(payload), headers={"Allow": "GET"} if status == 405 else None)

    def _authorized(self):
        return self.collector.authorized(self.headers.get("Authorization"), self.headers.get("X-API-Key"))

    def _content_length(self):
        """The body's length: ``None`` when there is none, a ``Reply`` refusing a request whose
        framing is ambiguous (the connection then closes: where its next request starts is unknown)."""
        if self.headers.get("Transfer-Encoding") is not None:
            self.close_connection = True
            self._body_unread = True
            return Collector.refuse(411, "chunked bodies (any Transfer-Encoding) are not accepted: "
                                         "send Content-Length")
        values = self.headers.get_all("Content-Length") or []
        if len(values) > 1:
            self.close_connection = True
            self._body_unread = True
            return Collector.refuse(400, f"{len(values)} Content-Length headers: send one")
        if not values:
            return None
        if not _DIGITS.fullmatch(values[0].strip()):
            self.close_connection = True
            self._body_unread = True
            return Collector.refuse(400, f"Content-Length is not a number of bytes: {values[0][:40]!r}")
        return int(values[0])

    def _read_body(self, limit=None):
        length = self._content_length()
        if length is None:
            self.close_connection = True
            return Collector.refuse(411, "a Content-Length header is required")
        if isinstance(length, Reply):
            return length
        limit = limit or self.collector.config.max_body_bytes
        if length > limit:
            self.close_connection = True  # the unread body would poison the next request
            self._body_unread = True
            return Collector.refuse(413, f"body of {length} bytes exceeds the limit of {limit}")
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return Collector.refuse(400, "body shorter than its Content-Length")
        return body

    def _discard_body(self, length=None):
        """Read and drop the body of a request refused without it (or of a GET)."""
        if length is None:
            length = self._content_length()
        if isinstance(length, Reply):
            return  # refused for its framing: the connection closes
        if length is not None and length <= self.collector.config.max_body_bytes:
            self.rfile.read(length)
        elif length is not None:
            self.close_connection = True
            self._body_unread = True

    def _send(self, reply):
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)
        if self._body_unread:
            self._linger()

    # Set when a body is refused unread (411, 413): see _linger.
    _body_unread = False

    def _linger(self):
        """Read and drop what the sender still sends of a refused body, for a while, before
        closing: closing with unread data makes the kernel reset the connection, and the
        sender would see a broken pipe instead of the reply that says why."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            drained = 0
            while drained < LINGER_BYTES:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.connection.settimeout(remaining)
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        logger.debug("%s - %s", self.address_string(), format % args)

    def log_error(self, format, *args):  # noqa: A002
        logger.info("%s - %s", self.address_string(), format % args)


def _reason(reply):
    """What a refusal made by ``Collector.refuse`` (OTLP's JSON status) says."""
    try:
        return json.loads(reply.body)["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {reply.status}"


def _static(relative):
    """A file under ``static/``; nothing outside it, whatever the path says."""
    root = STATIC_DIR.resolve()
    try:
        target = (root / relative).resolve()
        found = root in target.parents and target.is_file()
    except (ValueError, OSError):  # a NUL byte, a name too long, ...
        found = False
    if not found:
        return Reply(404, b"not found", "text/plain")
    content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type.endswith("javascript"):
        content_type += "; charset=utf-8"
    return Reply(200, target.read_bytes(), content_type, {"Cache-Control": "max-age=3600"})


class CollectorServer(PooledHTTPServer):
    """The listening socket; ``collector`` is attached once the process has its store."""

    parent_pid = None  # set in worker processes: they stop when the parent is gone

    def __init__(self, config, collector=None):
        if ":" in config.host:
            self.address_family = socket.AF_INET6
        self.collector = collector
        super().__init__((config.host, config.port), Handler, threads=config.threads)

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def service_actions(self):
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            threading.Thread(target=self.shutdown).start()


class RetentionThread(threading.Thread):
    """Applies the store's retention now and then every ``interval`` seconds."""

    def __init__(self, store, interval):
        super().__init__(name="spyglass-retention", daemon=True)
        self.store, self.interval = store, interval
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            try:
                self.store.apply_retention()
            except Exception:  # keep serving; say why retention failed
                logger.exception("retention failed")
            self.stopped.wait(self.interval)


def make_server(config, store=None):
    """A bound, not yet serving, single-process collector for ``config``."""
    return CollectorServer(config, Collector(config, store or open_store(config)))


def default_workers():
    """One process per core, up to 4: decoding is CPU-bound Python, so threads cannot scale it."""
    return min(os.cpu_count() or 1, 4) if hasattr(os, "fork") else 1


def _fork_workers(server, config, count):
    """Start ``count`` worker processes accepting on ``server``'s socket; their pids."""
    pids = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:  # worker: its own store (SQLite connections must not cross a fork)
            status = 1
            try:
                server.parent_pid = os.getppid()
                server.collector = Collector(config, open_store(config, maintain=False))
                signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
                server.serve_forever()
                server.collector.store.close()
                status = 0
            finally:
                os._exit(status)
        pids.append(pid)
    return pids


def _stop_workers(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def serve(config, out=sys.stdout, workers=None):
    """Run ``spyglass serve`` until SIGINT or SIGTERM.

    ``workers`` processes (default: one per core, up to 4) accept on one socket and write
    to one database; this process is one of them and also applies retention.
    """
    workers = max(1, workers or default_workers())
    open_store(config, maintain=False).close()  # create or migrate the schema before any worker opens it
    server = CollectorServer(config)
    if config.binds_publicly and not config.api_key:
        print(f"warning: listening on {config.host} without an API key: anyone who can reach "
              f"port {server.server_address[1]} can send telemetry and read it. Set --api-key "
              f"(or SPYGLASS_COLLECTOR_API_KEY), or bind to 127.0.0.1.", file=sys.stderr, flush=True)
    sys.stdout.flush(), sys.stderr.flush()  # nothing buffered may be written twice by the workers
    if workers > 1:
        # Every process wakes on a new connection and one wins it: the others' accept()
        # must fail fast (socketserver ignores that) instead of blocking their loop.
        server.socket.setblocking(False)
    pids = _fork_workers(server, config, workers - 1)
    server.collector = Collector(config, open_store(config))
    retention = RetentionThread(server.collector.store, config.retention_interval)
    retention.start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"spyglass collector listening on {server.url} (database: {server.collector.store.describe()['location']}, "
          f"{workers} worker{'s' if workers > 1 else ''})", file=out, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        _stop_workers(pids)
        retention.stopped.set()
        retention.join(timeout=30)
        server.server_close()
        server.collector.store.close()
    return 0
