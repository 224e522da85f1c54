"""An unmodified Tornado app: it knows nothing of spyglass.

``python tornado_app.py PORT`` serves it until SIGTERM or SIGINT. ``/call`` fetches
``CALL_URL`` (default: this server's own ``/echo``) with ``AsyncHTTPClient`` and answers
what came back.
"""
import asyncio
import json
import os
import signal
import sys

from tornado.httpclient import AsyncHTTPClient
from tornado.web import Application, HTTPError, RequestHandler, url


class Health(RequestHandler):
    def get(self):
        self.write("ok")


class User(RequestHandler):
    def get(self, user_id):
        self.write({"id": int(user_id)})


class Boom(RequestHandler):
    async def get(self):
        self.write({"result": 1 / 0})


class Missing(RequestHandler):
    def get(self):
        raise HTTPError(404)


class Subscribe(RequestHandler):
    def post(self):  # a GET is answered 405 by the handler its URL spec routed to
        self.write("subscribed")


class Echo(RequestHandler):
    def get(self):
        self.write(json.dumps(list(self.request.headers.get_all())))


class Call(RequestHandler):
    async def get(self):
        target = os.environ.get("CALL_URL") or f"http://127.0.0.1:{self.request.host.split(':')[1]}/echo"
        response = await AsyncHTTPClient().fetch(target + "?token=tok-SECRET-5",
                                                 headers={"X-App": "1"})
        self.write(response.body)


def make_app():
    return Application([
        (r"/health", Health),
        url(r"/users/([0-9]+)", User),
        (r"/boom", Boom),
        (r"/missing", Missing),
        (r"/echo", Echo),
        (r"/subscribe", Subscribe),
        (r"/call", Call),
    ])


async def main(port):
    make_app().listen(port, "127.0.0.1")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
