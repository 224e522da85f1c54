"""requests: ``Session.send`` (every request of the API, ``requests.get`` included) is a
CLIENT span with the trace context injected; urllib3 and http.client below it record
nothing more.
"""
from ._http import OutboundHTTP
from ._patch import Patch, Supports

SUPPORTS = Supports("requests", "2.20")
TIMING = "requests"
PATCHES = (
    Patch("requests", "sessions.Session", send="traced_send"),
)
setup = OutboundHTTP.setup_for(TIMING)  # what the patches share: spans, context, scrubbing


def traced_send(original, http):
    def send(self, request, **kwargs):
        # requests made these headers for this request: the context goes in for the send
        # (hooks, adapters and redirects see what goes out) and comes out after it.
        with http.sending(request.method, request.url) as call:
            call.in_place(request.headers)
            response = original(self, request, **kwargs)
            call.status = response.status_code
        return response

    return send
