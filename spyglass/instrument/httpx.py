"""httpx, sync and async: ``Client.send``/``AsyncClient.send`` (every request method goes
through them) are CLIENT spans with the trace context injected into the ``Request``'s
headers for the send (auth flows, event hooks and redirects see what goes out), then taken
out. spyglass's own exports (httpx on the reporter thread) are never traced.

| patched | how |
|---|---|
| ``httpx.Client.send`` | span; the context in the ``Request``'s headers for the send, then taken out |
| ``httpx.AsyncClient.send`` | the same, awaited |
"""
from ._http import OutboundHTTP
from ._patch import Patch, Supports

SUPPORTS = Supports("httpx", "0.23")
TIMING = "httpx"
PATCHES = (
    Patch("httpx", "Client", send="traced_send"),
    Patch("httpx", "AsyncClient", send="traced_send_async"),
)


def setup(agent, module):
    return OutboundHTTP(agent, TIMING)


def traced_send(original, http):
    def send(self, request, *args, **kwargs):
        started = http.start(request.method, request.url)
        if started is None:
            return original(self, request, *args, **kwargs)
        headers = request.headers
        added = http.add_context(started, headers)
        try:
            response = original(self, request, *args, **kwargs)
        except Exception as error:
            http.finish(started, error=error)
            raise
        finally:
            http.remove_context(headers, added)
        http.finish(started, response.status_code)
        return response

    return send


def traced_send_async(original, http):
    async def send(self, request, *args, **kwargs):
        started = http.start(request.method, request.url)
        if started is None:
            return await original(self, request, *args, **kwargs)
        headers = request.headers
        added = http.add_context(started, headers)
        try:
            response = await original(self, request, *args, **kwargs)
        except Exception as error:
            http.finish(started, error=error)
            raise
        finally:
            http.remove_context(headers, added)
        http.finish(started, response.status_code)
        return response

    return send
