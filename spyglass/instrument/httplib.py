"""urllib.request and http.client: ``HTTPConnection.request`` starts a CLIENT span and
injects the trace context, ``getresponse`` ends it with the status. Below urllib3 or
requests nothing is recorded (they trace).

| patched | how |
|---|---|
| ``http.client.HTTPConnection.request`` | span started, headers copied and injected |
| ``http.client.HTTPConnection.getresponse`` | span finished with ``http.response.status_code`` |
"""
import copy
import functools
import weakref

from ._http import OutboundHTTP
from ..trace.context import get_active_scope


def install(agent, module):
    http = OutboundHTTP(agent, "httplib")
    connection_class = module.HTTPConnection
    original_request = connection_class.request
    original_getresponse = connection_class.getresponse
    pending = weakref.WeakKeyDictionary()  # connection -> its request's span

    @functools.wraps(original_request)
    def request(self, method, url, body=None, headers={}, **kwargs):  # noqa: B006 (the driver's default)
        if get_active_scope() is None:
            return original_request(self, method, url, body, headers, **kwargs)
        outgoing = _copy(headers)  # the context goes into a copy: the app's stays as it was
        started = http.start(method, _full_url(self, url), outgoing)
        if started is None:
            return original_request(self, method, url, body, headers, **kwargs)
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

    @functools.wraps(original_getresponse)
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

    connection_class.request = request
    connection_class.getresponse = getresponse


def _copy(headers):
    """A copy of the app's headers that takes the trace context, of the same type so that
    what http.client sends is the same (an ``email.message.Message`` repeats headers), or
    None when it cannot be copied (then nothing is injected)."""
    try:
        # Deep: a shallow copy of a Message shares its list of headers with the app's.
        return dict(headers) if type(headers) is dict else copy.deepcopy(headers)
    except Exception:
        return None


def _full_url(connection, url):
    if "://" in url:
        return url
    scheme = "https" if connection.default_port == 443 else "http"
    port = connection.port
    netloc = connection.host if port in (None, connection.default_port) else f"{connection.host}:{port}"
    return f"{scheme}://{netloc}{url}"
