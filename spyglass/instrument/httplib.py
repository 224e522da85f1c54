"""urllib.request and http.client: ``HTTPConnection.request`` starts a CLIENT span and
injects the trace context, ``getresponse`` ends it with the status. Below urllib3 or
requests nothing is recorded (they trace).

The request's span starts in ``request`` (the context sent in a copy of the headers, of
their own type) and ends in ``getresponse`` with ``http.response.status_code``.
"""
import weakref

from ._http import OutboundHTTP
from ._patch import Patch

SUPPORTS = None  # the standard library's own
TIMING = "httplib"
PATCHES = (
    Patch("http.client", "HTTPConnection", request="traced_request",
          getresponse="traced_getresponse"),
)


class PendingRequests(OutboundHTTP):
    """Outbound HTTP, and the span of each connection's request until its response."""

    def __init__(self, agent, module):
        OutboundHTTP.__init__(self, agent, TIMING)
        self.pending = weakref.WeakKeyDictionary()  # connection -> its request's span


setup = PendingRequests


def traced_request(original_request, http):
    pending = http.pending

    def request(self, method, url, body=None, headers={}, **kwargs):  # noqa: B006 (the driver's default)
        started = http.start(method, _full_url(self, url))
        if started is None:
            return original_request(self, method, url, body, headers, **kwargs)
        # Into a copy of their own type (an email.message.Message repeats fields): the app's
        # object stays as it was, and the default ``{}`` is shared by every call.
        outgoing = http.with_context(started, headers)
        if outgoing is not None:
            headers = outgoing
        # The span stays open until getresponse; other requests meanwhile are traced.
        started = http.release(started)
        try:
            result = original_request(self, method, url, body, headers, **kwargs)
        except Exception as error:
            http.finish(started, error=error)
            raise
        previous = pending.pop(self, None)
        if previous is not None:  # a request whose response was never read
            http.finish(previous)
        pending[self] = started
        return result

    return request


def traced_getresponse(original_getresponse, http):
    pending = http.pending

    def getresponse(self):
        started = pending.pop(self, None)
        if started is None:
            return original_getresponse(self)
        try:
            response = original_getresponse(self)
        except Exception as error:
            http.finish(started, error=error)
            raise
        http.finish(started, response.status)
        return response

    return getresponse


def _full_url(connection, url):
    if "://" in url:
        return url
    scheme = "https" if connection.default_port == 443 else "http"
    port = connection.port
    netloc = connection.host if port in (None, connection.default_port) else f"{connection.host}:{port}"
    return f"{scheme}://{netloc}{url}"
