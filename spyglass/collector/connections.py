"""HTTP/1.1 connections served by a bounded pool of threads.

A thread per connection, as ``ThreadingHTTPServer`` gives, lets any number of clients
take any number of threads: 4,000 idle connections were 4,004 threads. Here a connection
waiting for its next request waits in a selector, costing a file descriptor and no
thread; once a request arrives on it, the connection joins a bounded queue that a fixed
pool of threads works through, one request (or a pipelined run of them) at a time. A
connection the queue has no room for, or one beyond ``max_connections``, gets a 503 with
``Retry-After``, as OTLP asks of a server that is busy.
"""
import logging
import os
import queue
import selectors
import socket
import threading
import time
from contextlib import contextmanager
from http.server import HTTPServer

logger = logging.getLogger("spyglass.collector")

BUSY_BODY = b'{"error": "the collector is busy: retry later"}'
BUSY_REPLY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
              b"Connection: close\r\nContent-Length: " + str(len(BUSY_BODY)).encode() + b"\r\n\r\n" + BUSY_BODY)
#: Requests that may wait for a thread, per thread: a waiting request costs a descriptor and
#: no memory (its body is still in the kernel), so the queue absorbs bursts; beyond it, 503.
QUEUE_PER_THREAD = 64
#: A refused connection is drained for at most this long, so that its client reads the
#: 503 instead of a reset (closing a socket with unread data resets it).
DRAIN_SECONDS = 2.0


def default_threads():
    """Threads per process: four per core (a request waits on the network and the database
    as well as on the CPU), at least 4, at most 32."""
    return max(4, min(32, 4 * (os.cpu_count() or 1)))


def default_max_connections():
    """Open connections per process: what the file descriptor limit leaves room for."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft == resource.RLIM_INFINITY:
            soft = 65536
    except (ImportError, OSError, ValueError):  # no such limit here (Windows)
        soft = 1024
    return max(16, min(10_000, soft - 64))  # leave descriptors for the database and logs


class _Connection:
    __slots__ = ("socket", "address", "deadline", "draining")

    def __init__(self, sock, address, deadline):
        self.socket, self.address, self.deadline = sock, address, deadline
        self.draining = False


class PooledHTTPServer(HTTPServer):
    """An ``HTTPServer`` whose requests are served by ``threads`` threads.

    ``queue_size`` connections with a request may wait for a thread; ``max_connections``
    may be open at once; a connection idle for ``idle_timeout`` seconds is closed.
    """

    request_queue_size = 1024  # the listen backlog: bursts of connections wait in the kernel

    def __init__(self, server_address, handler_class, threads=None, queue_size=None,
                 max_connections=None, idle_timeout=60.0):
        self.threads = threads or default_threads()
        self.max_connections = max_connections or default_max_connections()
        self.idle_timeout = idle_timeout
        self._ready = queue.Queue(maxsize=queue_size or QUEUE_PER_THREAD * self.threads)
        self._returned = queue.SimpleQueue()  # connections the pool hands back to the selector
        self._open = 0  # connections accepted and not yet closed (changed under _open_lock)
        self._open_lock = threading.Lock()
        # As in socketserver: a shutdown() asked before serve_forever() runs still stops it.
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._wakeup_reader = self._wakeup_writer = None  # made by serve_forever: one per process
        self._pool = []
        super().__init__(server_address, handler_class)

    # -- the selector thread -------------------------------------------------------------

    def serve_forever(self, poll_interval=0.5):
        self._stopped.clear()
        self.socket.setblocking(False)  # accept() takes what has come, then goes back to the others
        # The pool wakes the selector through this pair. Made here, not in __init__: worker
        # processes fork after __init__, and a pair they shared would wake any of them.
        self._wakeup_reader, self._wakeup_writer = socket.socketpair()
        for end in (self._wakeup_reader, self._wakeup_writer):
            end.setblocking(False)
        self._start_pool()
        parked = {}  # socket -> _Connection: idle, waiting for a request (or draining)
        next_sweep = 0.0
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self.socket, selectors.EVENT_READ)
                selector.register(self._wakeup_reader, selectors.EVENT_READ)
                while not self._stopping.is_set():
                    for key, _ in selector.select(poll_interval):
                        if key.fileobj is self.socket:
                            self._accept(selector, parked)
                        elif key.fileobj is self._wakeup_reader:
                            self._drain_wakeups()
                        else:
                            self._readable(selector, parked, key.data)
                    self._take_back(selector, parked)
                    if time.monotonic() >= next_sweep:
                        self._expire(selector, parked)
                        next_sweep = time.monotonic() + min(1.0, DRAIN_SECONDS / 2)
                    self.service_actions()
                for connection in list(parked.values()):
                    self._close(connection)
        finally:
            self._stop_pool()
            self._wakeup_reader.close()
            self._wakeup_writer.close()
            self._stopping.clear()
            self._stopped.set()

    def shutdown(self):
        self._stopping.set()
        self._wake()
        self._stopped.wait()

    def _accept(self, selector, parked):
        for _ in range(64):  # a burst, then back to the others
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors: the backlog keeps the rest
                logger.warning("cannot accept a connection: %s", exc)
                return
            with self._open_lock:
                self._open += 1
                crowded = self._open > self.max_connections
            connection = _Connection(sock, address, time.monotonic() + self.idle_timeout)
            if crowded:
                self._refuse(selector, parked, connection)
            else:
                self._park(selector, parked, connection)

    def _park(self, selector, parked, connection):
        connection.socket.setblocking(False)
        selector.register(connection.socket, selectors.EVENT_READ, connection)
        parked[connection.socket] = connection

    def _unpark(self, selector, parked, connection):
        selector.unregister(connection.socket)
        del parked[connection.socket]

    def _readable(self, selector, parked, connection):
        if connection.draining:
            try:
                if connection.socket.recv(65536):
                    return
            except BlockingIOError:
                return
            except OSError:
                pass
            self._unpark(selector, parked, connection)
            self._close(connection)
            return
        self._unpark(selector, parked, connection)
        try:
            self._ready.put_nowait(connection)
        except queue.Full:
            self._refuse(selector, parked, connection)

    def _refuse(self, selector, parked, connection):
        """Answer 503, then drain what the client sends for a while before closing."""
        sock = connection.socket
        try:
            sock.setblocking(False)
            while sock.recv(65536):  # what it sent already: a close with it unread would reset
                pass
        except OSError:
            pass
        try:
            sock.send(BUSY_REPLY)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(connection)
            return
        connection.draining = True
        connection.deadline = time.monotonic() + DRAIN_SECONDS
        self._park(selector, parked, connection)

    def _take_back(self, selector, parked):
        deadline = time.monotonic() + self.idle_timeout
        while True:
            try:
                connection = self._returned.get_nowait()
            except queue.Empty:
                return
            connection.deadline = deadline
            self._park(selector, parked, connection)

    def _expire(self, selector, parked):
        now = time.monotonic()
        for connection in [c for c in parked.values() if c.deadline < now]:
            self._unpark(selector, parked, connection)
            self._close(connection)

    def _close(self, connection):
        try:
            connection.socket.close()
        except OSError:
            pass
        with self._open_lock:
            self._open -= 1

    def _wake(self):
        try:
            self._wakeup_writer.send(b"\0")
        except (OSError, AttributeError):  # its buffer is full (the selector is awake anyway), or
            pass  # serve_forever is not running

    def _drain_wakeups(self):
        try:
            while self._wakeup_reader.recv(4096):
                pass
        except OSError:
            pass

    # -- the pool ------------------------------------------------------------------------

    def _start_pool(self):
        self._pool = [threading.Thread(target=self._work, name=f"spyglass-http-{number}", daemon=True)
                      for number in range(self.threads)]
        for thread in self._pool:
            thread.start()

    def _stop_pool(self):
        for _ in self._pool:
            self._ready.put(None)
        for thread in self._pool:
            thread.join(timeout=30)
        self._pool = []

    def _work(self):
        while True:
            connection = self._ready.get()
            if connection is None:
                return
            try:
                keep = self._serve(connection)
            except Exception:  # the handler's own guard failed: drop this connection only
                logger.exception("serving %s failed", connection.address)
                keep = False
            if keep and not self._stopping.is_set():
                self._returned.put(connection)
                self._wake()
            else:
                self._close(connection)

    def _serve(self, connection):
        """Serve the requests that have arrived on ``connection``; whether to keep it open."""
        handler = self.RequestHandlerClass.__new__(self.RequestHandlerClass)
        handler.request, handler.client_address, handler.server = connection.socket, connection.address, self
        handler.setup()
        try:
            handler.close_connection = True
            while True:
                handler.handle_one_request()
                if handler.close_connection or self._stopping.is_set():
                    return False
                if not self._buffered(handler):
                    return True
        except OSError:
            return False
        finally:
            try:
                handler.finish()
            except OSError:
                pass

    @staticmethod
    def _buffered(handler):
        """Whether the next request has been read into the handler's buffer already."""
        sock = handler.connection
        sock.settimeout(0)
        try:
            return bool(handler.rfile.peek(1))
        except OSError:
            return False
        finally:
            sock.settimeout(handler.timeout)


class Busy(Exception):
    """The budget had no room within the time a request may wait."""


class ByteBudget:
    """At most ``capacity`` bytes held at once, by whoever holds them; others wait their turn.

    The collector holds a request's inflated body in it while decoding and storing it:
    decoding costs memory in proportion to the body, so this bounds what any number of
    concurrent senders can make one process use.
    """

    def __init__(self, capacity):
        self.capacity = capacity
        self.used = 0
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, size, wait):
        """Hold ``size`` bytes (at most the whole budget) while in the ``with`` block; ``Busy``
        when they are not free within ``wait`` seconds."""
        size = min(size, self.capacity)
        with self._changed:
            if not self._changed.wait_for(lambda: self.used + size <= self.capacity, wait):
                raise Busy
            self.used += size
        try:
            yield
        finally:
            with self._changed:
                self.used -= size
                self._changed.notify_all()
