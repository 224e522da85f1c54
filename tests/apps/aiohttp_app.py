"""An unmodified aiohttp app: it knows nothing of spyglass.

``python aiohttp_app.py PORT`` serves it with ``web.run_app``; gunicorn serves ``app``
(``-k aiohttp.GunicornWebWorker``). ``/call`` calls this same server's ``/echo`` with a
``ClientSession`` and answers what ``/echo`` received.
"""
import os
import sys

from aiohttp import ClientSession, web

routes = web.RouteTableDef()


@routes.get("/health")
async def health(request):
    return web.Response(text="ok")


@routes.get("/users/{id}")
async def user(request):
    return web.json_response({"id": int(request.match_info["id"])})


@routes.get("/boom")
async def boom(request):
    return web.json_response(1 / 0)


@routes.get("/missing")
async def missing(request):
    raise web.HTTPNotFound(text="nope")


@routes.post("/subscribe")
async def subscribe(request):
    return web.Response(text="subscribed")


@routes.get("/echo")
async def echo(request):
    return web.json_response([[name, value] for name, value in request.headers.items()])


@routes.get("/call")
async def call(request):
    base = f"http://127.0.0.1:{request.url.port}"
    async with ClientSession(headers={"X-Session": "s"}) as session:
        async with session.get(f"{base}/echo", params={"token": "tok-SECRET-3"},
                               headers=[("X-Rep", "1"), ("X-Rep", "2")]) as response:
            return web.json_response(await response.json())


@routes.get("/inventory")
async def inventory(request):
    """A query on asyncpg and a cache round trip on pymemcache (INVENTORY_POSTGRES:
    host:port:user, INVENTORY_MEMCACHED: host:port)."""
    import asyncpg
    from pymemcache.client.base import Client

    host, port, user = os.environ["INVENTORY_POSTGRES"].split(":")
    connection = await asyncpg.connect(host=host, port=int(port), user=user, database="test")
    try:
        count = await connection.fetchval("SELECT count(*) FROM pg_class WHERE relname = $1",
                                          "pg_type")
    finally:
        await connection.close()
    host, port = os.environ["INVENTORY_MEMCACHED"].rsplit(":", 1)
    cache = Client((host, int(port)))
    try:
        cache.set("stock", b"7")
        stock = cache.get("stock")
    finally:
        cache.close()
    return web.json_response({"count": count, "stock": stock.decode()})


async def item(request):
    return web.json_response({"item": request.match_info["item"]})


api = web.Application()
api.router.add_get("/items/{item}", item)

app = web.Application()
app.add_routes(routes)
app.add_subapp("/api", api)
app.router.add_static("/static", os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1] if len(sys.argv) > 1
                                                    else os.environ["PORT"]), print=None)
