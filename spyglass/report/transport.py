"""OTLP/HTTP export with httpx: gzip, a timeout per request, retries with exponential
backoff and jitter on network errors, 429 and 5xx, honouring ``Retry-After``; a 413 is
handed back to the reporter, which splits the body.

httpx is imported here, and this module only on the reporter thread, so the app's
startup never pays for it. Failures are logged once when exporting stops working and once
when it works again, never per request.
"""
import email.utils
import logging
import random
import time
import zlib

import httpx

from .resource import SDK_VERSION

log = logging.getLogger("spyglass")

RETRYABLE_STATUS = frozenset((408, 429, 500, 502, 503, 504))
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 60.0
MAX_ATTEMPTS = 6
COMPRESS_LEVEL = 5
COMPRESS_BUFFER = 256 * 1024  # bytes given to zlib per call (see Transport.compress)

# What became of a body (Transport.send).
SENT, TOO_LARGE, FAILED, NOT_FOUND = "sent", "too large", "failed", "not found"


class Transport:
    def __init__(self, endpoint, headers, timeout):
        self.endpoint = endpoint
        self.timeout = timeout
        self._client = httpx.Client(timeout=timeout, headers={
            **headers,
            "content-type": "application/json",
            "content-encoding": "gzip",
            "user-agent": f"spyglass/{SDK_VERSION}",
        })
        self._buffer = memoryview(bytearray(COMPRESS_BUFFER))
        self.healthy = True
        self.answered = True  # whether the endpoint answered the last attempt at all
        self.lost_while_down = 0
        self._rejections_logged = False

    def close(self):
        self._client.close()

    def compress(self, chunks) -> bytes:
        """A body for ``send``: the gzip of the concatenated ``chunks`` (bytes), compressed
        as they come, so that only the compressed body is ever whole in memory.

        The chunks are gathered in a buffer kept for the transport's life and given to
        zlib a buffer at a time: zlib lets the app's threads run during each call, and
        this thread may then wait a switch interval (5 ms) to run again when one of
        them is busy, so the calls are few (3 for a batch of 512 two-span traces). One
        body at a time: only the reporter's drain, which has one owner, calls this."""
        compressor = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        view = self._buffer
        capacity = len(view)
        out = []
        filled = 0
        for chunk in chunks:
            size = len(chunk)
            if filled + size > capacity:
                if filled:
                    out.append(compressor.compress(view[:filled]))
                    filled = 0
                if size > capacity:
                    out.append(compressor.compress(chunk))
                    continue
            view[filled:filled + size] = chunk
            filled += size
        if filled:
            out.append(compressor.compress(view[:filled]))
        out.append(compressor.flush())
        return b"".join(out)

    def send(self, path, data: bytes, deadline, sleep=time.sleep, give_up=None,
             content_type=None, not_found=False) -> str:
        """POST one body, ``data`` gzipped (see ``compress``); retry until it is accepted,
        refused for good, ``deadline()`` (a ``time.monotonic()`` value, asked anew before
        each retry) would pass, or ``give_up()`` says to stop after a failed attempt (at
        exit: one attempt more, then the rest is dropped). SENT, TOO_LARGE (413: the
        caller splits the body), NOT_FOUND (404, when ``not_found``: the caller learns
        that the receiver does not take this signal, and nothing is logged) or FAILED.
        ``content_type``: the body's, if not JSON."""
        headers = {"content-type": content_type} if content_type else None
        url = self.endpoint + path
        for attempt in range(MAX_ATTEMPTS):
            # Never wait on the network past the deadline (at exit: shutdown_timeout).
            reason, delay, answered = self._attempt(
                url, data, max(0.1, min(self.timeout, deadline() - time.monotonic())), headers)
            self.answered = answered
            if reason is None:
                self._recovered()
                return SENT
            if delay is TOO_LARGE:
                return TOO_LARGE  # not a failure of the endpoint: the body is split and resent
            if delay is NOT_FOUND and not_found:
                return NOT_FOUND
            self._failing(url, reason)
            if delay is None or delay is NOT_FOUND or (
                    not answered and give_up is not None and give_up()):
                break  # refused for good, or unreachable at exit: retrying would not help
            delay = min(delay, MAX_RETRY_AFTER) if delay else _backoff(attempt)
            if time.monotonic() + delay >= deadline():
                break
            sleep(delay)
            if time.monotonic() >= deadline():
                break
        self.lost_while_down += 1
        return FAILED

    def _attempt(self, url, data, timeout, headers=None):
        """(None, None, True) on success, else (reason, retry delay or None for 'do not
        retry' or TOO_LARGE, whether the endpoint answered at all); a delay of 0 means
        'retry after the usual backoff'."""
        try:
            response = self._client.post(url, content=data, timeout=timeout, headers=headers)
        except httpx.TimeoutException:
            return "timed out", 0, False
        except httpx.TransportError as exc:
            return _describe_transport_error(exc), 0, False
        status = response.status_code
        if status == 413:
            return "HTTP 413", TOO_LARGE, True
        if status == 404:
            return "HTTP 404" + _advice(404), NOT_FOUND, True
        if 200 <= status < 300:
            self._note_partial_success(response)
            return None, None, True
        reason = f"HTTP {status} {response.reason_phrase}".strip()
        if status in RETRYABLE_STATUS:
            return reason, _retry_after(response.headers.get("retry-after")) or 0, True
        return reason + _advice(status), None, True

    def _failing(self, url, reason):
        if self.healthy:
            log.warning("spyglass: cannot export to %s (%s); retrying, and dropping telemetry "
                        "while this lasts; the app is not affected", url, reason)
            self.healthy = False

    def _recovered(self):
        if not self.healthy:
            log.warning("spyglass: exporting to %s works again (%d batches lost meanwhile)",
                        self.endpoint, self.lost_while_down)
            self.healthy = True
            self.lost_while_down = 0

    def _note_partial_success(self, response):
        if self._rejections_logged or not response.content:
            return
        try:
            partial = response.json().get("partialSuccess") or {}
        except (ValueError, AttributeError):
            return
        rejected = {k: v for k, v in partial.items() if k.startswith("rejected") and int(v or 0)}
        if rejected:
            self._rejections_logged = True
            log.warning("spyglass: the collector rejected part of an export: %s %s",
                        rejected, partial.get("errorMessage", ""))


def _backoff(attempt):
    # Exponential, with full jitter around the nominal value so workers do not stampede.
    return min(MAX_BACKOFF, FIRST_BACKOFF * (2 ** attempt)) * random.uniform(0.5, 1.5)


def _retry_after(value):
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _describe_transport_error(exc):
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused: is the collector running?"
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return f"unknown host ({text})"
    return text


def _advice(status):
    if status in (401, 403):
        return ": check the API key in spyglass.headers"
    if status == 404:
        return ": is spyglass.endpoint the OTLP/HTTP base URL (without /v1/...)?"
    return ""
