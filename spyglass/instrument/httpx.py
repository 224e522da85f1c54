"""httpx, sync and async: ``Client.send``/``AsyncClient.send`` (every request method goes
through them) are CLIENT spans with the trace context injected into the ``Request``'s
headers for the send (auth flows, event hooks and redirects see what goes out), then taken
out. spyglass's own exports (httpx on the reporter thread) are never traced.
"""
from ._http import OutboundHTTP
from ._patch import Patch, Supports

SUPPORTS = Supports("httpx", "0.23")
TIMING = "httpx"
PATCHES = (
    Patch("httpx", "Client", send="traced_send"),
    Patch("httpx", "AsyncClient", send="traced_send_async"),
)
setup = OutboundHTTP.setup_for(TIMING)  # what the patches share: spans, context, scrubbing


def traced_send(original, http):
    def send(self, request, *args, **kwargs):
        with http.sending(request.method, request.url) as call:
            call.in_place(request.headers)
            response = original(self, request, *args, **kwargs)
            call.status = response.status_code
        return response

    return send


def traced_send_async(original, http):
    async def send(self, request, *args, **kwargs):
        with http.sending(request.method, request.url) as call:
            call.in_place(request.headers)
            response = await original(self, request, *args, **kwargs)
            call.status = response.status_code
        return response

    return send
