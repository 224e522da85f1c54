"""urllib3: ``HTTPConnectionPool.urlopen`` (all of ``PoolManager``/``request`` go through
it) is a CLIENT span with the trace context injected; retries and redirects inside it are
part of it, and http.client below records nothing more. Under requests, requests traces.

| patched | how |
|---|---|
| ``urllib3.connectionpool.HTTPConnectionPool.urlopen`` | span; the context sent in a copy of the headers of their own type |
"""
from ._http import OutboundHTTP
from ._patch import Patch, Supports
from ..trace.context import get_active_scope

SUPPORTS = Supports("urllib3", "1.25")
TIMING = "urllib3"
PATCHES = (
    Patch("urllib3", "connectionpool.HTTPConnectionPool", urlopen="traced_urlopen"),
)


def setup(agent, module):
    return OutboundHTTP(agent, TIMING)


def traced_urlopen(original, http):
    def urlopen(self, method, url, *args, **kwargs):
        if get_active_scope() is None:
            return original(self, method, url, *args, **kwargs)
        started = http.start(method, _full_url(self, url))
        if started is None:
            return original(self, method, url, *args, **kwargs)
        # urlopen(method, url, body=None, headers=None, …); None means the pool's headers.
        # The app's object may be shared (the pool's, a module's constant): it goes out as a
        # copy of its own type, an HTTPHeaderDict keeping its repeated fields.
        given = args[1] if len(args) > 1 else kwargs.get("headers")
        outgoing = http.with_context(started, self.headers if given is None else given)
        if outgoing is not None:
            if len(args) > 1:
                args = (args[0], outgoing) + args[2:]
            else:
                kwargs["headers"] = outgoing
        try:
            response = original(self, method, url, *args, **kwargs)
        except Exception as error:
            http.finish(started, error=error)
            raise
        http.finish(started, response.status)
        return response

    return urlopen


def _full_url(pool, url):
    if "://" in url:
        return url
    port = pool.port
    default = {"http": 80, "https": 443}.get(pool.scheme)
    netloc = pool.host if port in (None, default) else f"{pool.host}:{port}"
    return f"{pool.scheme}://{netloc}{url}"
