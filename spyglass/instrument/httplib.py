"""urllib.request and http.client: ``HTTPConnection.request`` starts a CLIENT span and
injects the trace context, ``getresponse`` ends it with the status. Below urllib3 or
requests nothing is recorded (they trace).

| patched | how |
|---|---|
| ``http.client.HTTPConnection.request`` | span started, headers copied and injected |
| ``http.client.HTTPConnection.getresponse`` | span finished with ``http.response.status_code`` |
"""
import functools
import weakref

from ._http import OutboundHTTP


def install(agent, module):
    http = OutboundHTTP(agent, "httplib")
    connection_class = module.HTTPConnection
    original_request = connection_class.request
    original_getresponse = connection_class.getresponse
    pending = weakref.WeakKeyDictionary()  # connection -> its request's span

    @functools.wraps(original_request)
    def request(self, method, url, body=None, headers={}, **kwargs):  # noqa: B006 (the driver's default)
        headers = dict(headers)
        started = http.start(method, _full_url(self, url), headers)
        if started is None:
            return original_request(self, method, url, body, headers, **kwargs)
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


def _full_url(connection, url):
    if "://" in url:
        return url
    scheme = "https" if connection.default_port == 443 else "http"
    port = connection.port
    netloc = connection.host if port in (None, connection.default_port) else f"{connection.host}:{port}"
    return f"{scheme}://{netloc}{url}"
