"""requests: ``Session.send`` (every request of the API, ``requests.get`` included) is a
CLIENT span with the trace context injected; urllib3 and http.client below it record
nothing more.

| patched | how |
|---|---|
| ``requests.Session.send`` | span; the context in the ``PreparedRequest``'s headers for the send, then taken out |
"""
from ._http import OutboundHTTP
from ._patch import Patch, Supports

SUPPORTS = Supports("requests", "2.20")
TIMING = "requests"
PATCHES = (
    Patch("requests", "sessions.Session", send="traced_send"),
)


def setup(agent, module):
    return OutboundHTTP(agent, TIMING)


def traced_send(original, http):
    def send(self, request, **kwargs):
        started = http.start(request.method, request.url)
        if started is None:
            return original(self, request, **kwargs)
        # requests made these headers for this request: the context goes in for the send
        # (hooks, adapters and redirects see what goes out) and comes out after it.
        headers = request.headers
        added = http.add_context(started, headers)
        try:
            response = original(self, request, **kwargs)
        except Exception as error:
            http.finish(started, error=error)
            raise
        finally:
            http.remove_context(headers, added)
        http.finish(started, response.status_code)
        return response

    return send
