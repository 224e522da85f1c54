"""The collector's HTTP edges: framing, HEAD, odd paths, a bounded pool of threads, bounded memory."""
import json
import os
import resource
import socket
import threading
import time

import psutil
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from . import payloads

SERVICE = "edges"


def _raw(collector, data, timeout=10):
    """Send ``data`` on a fresh connection; everything the collector answers until it closes."""
    with socket.create_connection((collector.host, collector.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


def _post(body, *headers):
    head = [b"POST /v1/traces HTTP/1.1", b"Host: x", b"Content-Type: application/json", *headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


BODY = json.dumps(payloads.traces(SERVICE, payloads.request_trace(SERVICE, "/framed")[1])).encode()
LENGTH = str(len(BODY)).encode()


@pytest.mark.parametrize("headers, status", [
    ([b"Content-Length: " + LENGTH, b"Content-Length: " + LENGTH], b"400"),
    ([b"Content-Length: " + LENGTH, b"Content-Length: 5"], b"400"),
    ([b"Content-Length: +" + LENGTH], b"400"),
    ([b"Content-Length: 1_0"], b"400"),
    ([b"Content-Length: -1"], b"400"),
    ([b"Content-Length: " + LENGTH, b"Transfer-Encoding: chunked"], b"411"),
    ([], b"411"),
], ids=["duplicate", "conflicting", "plus sign", "underscore", "negative", "with transfer-encoding", "missing"])
def test_ambiguous_framing_is_refused_and_the_connection_closed(collector, headers, status):
    reply = _raw(collector, _post(BODY, *headers))
    assert reply.startswith(b"HTTP/1.1 " + status), reply[:200]
    assert b"Connection: close" in reply
    assert reply.count(b"HTTP/1.1 ") == 1  # the body was not taken for a second request


def test_one_content_length_is_accepted_on_a_kept_connection(collector):
    reply = _raw(collector, _post(BODY, b"Content-Length: " + LENGTH) * 2, timeout=2)
    assert reply.count(b"HTTP/1.1 200") == 2, reply[:500]


def test_head_answers_like_get_without_a_body(collector):
    for path in ("/", "/traces", "/api/services", "/static/app.css", "/no/such/page"):
        get_status, get_headers, get_body = collector.request("GET", path)
        reply = _raw(collector, f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        head, _, rest = reply.partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {get_status}".encode()), (path, head)
        assert f"Content-Length: {len(get_body)}".encode() in head and rest == b"", (path, head, rest[:100])


@pytest.mark.parametrize("path", ["/static/%00", "/static/a%00b.css", "/static/..%2f..%2fserver.py",
                                  "/static/" + "a" * 5000, "/static/%ff%fe", "/%00", "/traces/%00",
                                  "/static/", "/static"])
def test_bad_paths_are_404(collector, path):
    assert collector.request("GET", path)[0] == 404


def test_a_get_with_a_body_keeps_the_connection_in_step(collector):
    request = b"GET /api/health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    reply = _raw(collector, request * 2, timeout=2)
    assert reply.count(b"HTTP/1.1 200") == 2, reply[:300]


# -- the pool ----------------------------------------------------------------------------

def _descriptors(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _usage(pid):
    process = psutil.Process(pid)
    return process.num_threads(), process.memory_info().rss >> 20


def test_two_thousand_idle_connections_take_no_threads(start_collector):
    _descriptors(4500)  # both ends of each connection, in this process and (inherited) the collector's
    collector = start_collector("--workers", "1", "--threads", "4")
    assert collector.request("GET", "/api/health")[0] == 200
    threads_before, rss_before = _usage(collector.process.pid)
    idle = [socket.create_connection((collector.host, collector.port)) for _ in range(2000)]
    try:
        time.sleep(0.5)
        started = time.monotonic()
        status, _, _ = collector.request("GET", "/api/health")
        assert status == 200 and time.monotonic() - started < 5
        threads, rss = _usage(collector.process.pid)
        assert threads == threads_before <= 4 + 4, (threads_before, threads)
        assert rss - rss_before < 40, (rss_before, rss)
        for sock in idle[:200]:  # some of them wake up at once: all served, or told to come back
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        for sock in idle[:200]:
            sock.settimeout(10)
            assert sock.recv(100).startswith((b"HTTP/1.1 200", b"HTTP/1.1 503"))
    finally:
        for sock in idle:
            sock.close()


def test_a_full_queue_answers_503_with_retry_after(start_collector):
    collector = start_collector("--workers", "1", "--threads", "1")
    waiting = []
    try:
        # Each sends half a body: the one thread waits on the first, the next 64 fill the queue.
        for _ in range(1 + 64):
            sock = socket.create_connection((collector.host, collector.port))
            sock.sendall(_post(b"{", b"Content-Length: 10"))
            waiting.append(sock)
        deadline = time.monotonic() + 20
        while True:  # until those are all queued: a request then gets a 503 at once
            assert time.monotonic() < deadline
            sock = socket.create_connection((collector.host, collector.port), timeout=1)
            waiting.append(sock)
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                reply = sock.recv(1000)
            except TimeoutError:
                continue  # queued
            break
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in head and b"busy" in body
    finally:
        for sock in waiting:
            sock.close()
    deadline = time.monotonic() + 10
    while collector.request("GET", "/api/health")[0] != 200:  # and it recovers
        assert time.monotonic() < deadline
        time.sleep(0.1)


# -- memory ------------------------------------------------------------------------------

def _field(number, payload):
    """A length-delimited protobuf field (written by hand: a million attributes through the
    protobuf library take a minute)."""
    length, size = bytearray(), len(payload)
    while True:
        length.append(size & 0x7F | (0x80 if size > 0x7F else 0))
        size >>= 7
        if not size:
            break
    return bytes([number << 3 | 2]) + bytes(length) + payload


def _tiny_attributes_request(limit, per_span):
    """An export request of just under ``limit`` bytes: spans of ``per_span`` one-letter
    attributes (14 bytes each), the last span with what room is left."""
    attribute = _field(2, _field(1, b"v"))  # KeyValue.value = AnyValue(string_value="v")
    resource = _field(1, _field(1, _field(1, b"service.name") + _field(2, _field(1, b"memory"))))
    spans, number, room = [], 0, limit - 100
    while room > 1000:
        count = min(per_span, (room - 100) // 15)
        attributes = b"".join(_field(9, _field(1, b"%05x" % n) + attribute) for n in range(number, number + count))
        spans.append(_field(2, _field(1, os.urandom(16)) + _field(2, os.urandom(8)) + _field(5, b"s") + attributes))
        number += count
        room -= len(spans[-1])
    body = _field(1, resource + _field(2, b"".join(spans)))  # ResourceSpans: resource, scope_spans
    assert len(body) <= limit
    return body


def _peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) >> 10 for line in status if line.startswith("VmHWM"))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the peak RSS from /proc")
def test_16_mb_of_tiny_attributes_decode_in_bounded_memory(start_collector):
    collector = start_collector("--workers", "1")
    bodies = [_tiny_attributes_request(16 << 20, per_span) for per_span in (1000, 10 << 20)]
    assert collector.request("GET", "/")[0] == 200
    before = _peak_rss_mb(collector.process.pid)

    def send(body, replies):
        status, _, reply = collector.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
        replies.append((status, ExportTraceServiceResponse.FromString(reply).partial_success))

    replies = []
    threads = [threading.Thread(target=send, args=(body, replies)) for body in bodies * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    peak = _peak_rss_mb(collector.process.pid)
    print(f"peak RSS {before} MB before, {peak} MB after 4 bodies of 16 MB at once")
    assert all(status == 200 for status, _ in replies)
    assert sorted(partial.rejected_spans for _, partial in replies) == [1, 1, 926, 926], replies
    assert peak - before < 200, (before, peak)  # was 1.2 GB for four such bodies
