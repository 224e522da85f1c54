"""urllib3: ``HTTPConnectionPool.urlopen`` (all of ``PoolManager``/``request`` go through
it) is a CLIENT span with the trace context injected; retries and redirects inside it are
part of it, and http.client below records nothing more. Under requests, requests traces.

| patched | how |
|---|---|
| ``urllib3.connectionpool.HTTPConnectionPool.urlopen`` | span; headers copied and injected |
"""
import functools

from ._http import OutboundHTTP


def install(agent, module):
    import urllib3.connectionpool

    http = OutboundHTTP(agent, "urllib3")
    pool_class = urllib3.connectionpool.HTTPConnectionPool
    original = pool_class.urlopen

    @functools.wraps(original)
    def urlopen(self, method, url, *args, **kwargs):
        # urlopen(method, url, body=None, headers=None, …)
        if len(args) > 1:
            headers = dict(args[1] if args[1] is not None else self.headers)
            args = (args[0], headers) + args[2:]
        else:
            given = kwargs.get("headers")
            headers = kwargs["headers"] = dict(given if given is not None else self.headers)
        started = http.start(method, _full_url(self, url), headers)
        if started is None:
            return original(self, method, url, *args, **kwargs)
        try:
            response = original(self, method, url, *args, **kwargs)
        except Exception as error:
            http.finish(started, error=error)
            raise
        http.finish(started, response.status)
        return response

    pool_class.urlopen = urlopen


def _full_url(pool, url):
    if "://" in url:
        return url
    port = pool.port
    default = {"http": 80, "https": 443}.get(pool.scheme)
    netloc = pool.host if port in (None, default) else f"{pool.host}:{port}"
    return f"{pool.scheme}://{netloc}{url}"
