"""urllib3: ``HTTPConnectionPool.urlopen`` (all of ``PoolManager``/``request`` go through
it) is a CLIENT span with the trace context injected; retries and redirects inside it are
part of it, and http.client below records nothing more. Under requests, requests traces.
"""
from ._http import OutboundHTTP
from ._patch import Patch, Supports

# Declared as every HTTP client's is (instrument/requests.py, httpx.py): one send method, a
# shared OutboundHTTP.
SUPPORTS = Supports("urllib3", "1.25")
TIMING = "urllib3"
PATCHES = (
    Patch("urllib3", "connectionpool.HTTPConnectionPool", urlopen="traced_urlopen"),
)
setup = OutboundHTTP.setup_for(TIMING)  # what the patches share: spans, context, scrubbing


def traced_urlopen(original, http):
    def urlopen(self, method, url, *args, **kwargs):
        with http.sending(method, _full_url(self, url)) as call:
            # urlopen(method, url, body=None, headers=None, …); None means the pool's
            # headers. The app's object may be shared (the pool's, a module's constant): it
            # goes out as a copy of its own type, an HTTPHeaderDict keeping its repeated
            # fields.
            given = args[1] if len(args) > 1 else kwargs.get("headers")
            outgoing = call.copy_of(self.headers if given is None else given)
            if outgoing is not None:
                if len(args) > 1:
                    args = (args[0], outgoing) + args[2:]
                else:
                    kwargs["headers"] = outgoing
            response = original(self, method, url, *args, **kwargs)
            call.status = response.status
        return response

    return urlopen


def _full_url(pool, url):
    if "://" in url:
        return url
    port = pool.port
    default = {"http": 80, "https": 443}.get(pool.scheme)
    netloc = pool.host if port in (None, default) else f"{pool.host}:{port}"
    return f"{pool.scheme}://{netloc}{url}"
