"""requests: ``Session.send`` (every request of the API, ``requests.get`` included) is a
CLIENT span with the trace context injected; urllib3 and http.client below it record
nothing more.

| patched | how |
|---|---|
| ``requests.Session.send`` | span, headers injected into the ``PreparedRequest`` |
"""
import functools

from ._http import OutboundHTTP


def install(agent, module):
    http = OutboundHTTP(agent, "requests")
    session = module.sessions.Session
    original = session.send

    @functools.wraps(original)
    def send(self, request, **kwargs):
        started = http.start(request.method, request.url, request.headers)
        if started is None:
            return original(self, request, **kwargs)
        try:
            response = original(self, request, **kwargs)
        except Exception as error:
            http.finish(started, error=error)
            raise
        http.finish(started, response.status_code)
        return response

    session.send = send
