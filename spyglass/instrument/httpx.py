"""httpx, sync and async: ``Client.send``/``AsyncClient.send`` (every request method goes
through them) are CLIENT spans with the trace context injected into the ``Request``'s
headers for the send (auth flows, event hooks and redirects see what goes out), then taken
out. spyglass's own exports (httpx on the reporter thread) are never traced.

| patched | how |
|---|---|
| ``httpx.Client.send`` | span; the context in the ``Request``'s headers for the send, then taken out |
| ``httpx.AsyncClient.send`` | the same, awaited |
"""
import functools

from ._http import OutboundHTTP


def install(agent, module):
    http = OutboundHTTP(agent, "httpx")
    client, async_client = module.Client, module.AsyncClient
    original, original_async = client.send, async_client.send

    @functools.wraps(original)
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

    @functools.wraps(original_async)
    async def send_async(self, request, *args, **kwargs):
        started = http.start(request.method, request.url)
        if started is None:
            return await original_async(self, request, *args, **kwargs)
        headers = request.headers
        added = http.add_context(started, headers)
        try:
            response = await original_async(self, request, *args, **kwargs)
        except Exception as error:
            http.finish(started, error=error)
            raise
        finally:
            http.remove_context(headers, added)
        http.finish(started, response.status_code)
        return response

    client.send = send
    async_client.send = send_async
