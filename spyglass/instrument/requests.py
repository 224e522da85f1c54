"""requests: ``Session.send`` (every request of the API, ``requests.get`` included) is a
CLIENT span with the trace context injected; urllib3 and http.client below it record
nothing more.

| patched | how |
|---|---|
| ``requests.Session.send`` | span; the context in the ``PreparedRequest``'s headers for the send, then taken out |
"""
import functools

from ._http import OutboundHTTP


def install(agent, module):
    http = OutboundHTTP(agent, "requests")
    session = module.sessions.Session
    original = session.send

    @functools.wraps(original)
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

    session.send = send
