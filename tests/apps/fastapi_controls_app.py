"""A FastAPI app that sets spyglass's per-request options through the API (the ASGI twin
of the WSGI environ keys)."""
import asyncio
import logging

from fastapi import FastAPI

import spyglass

app = FastAPI()
shop_log = logging.getLogger("shop")


@app.get("/ok")
async def ok(force: bool = False):
    if force:
        spyglass.set_request_options(force_send=True, view_name="forced-view")
    return "ok"


@app.get("/fail")
async def fail():
    spyglass.set_request_options(username="u-asgi", group_string="asgi-group",
                                 message="asgi message", report_local_vars=True)
    order_total = 42
    raise RuntimeError(f"async failure {order_total}")


@app.get("/sync-fail")
def sync_fail():
    spyglass.set_request_options(view_name="sync-view", group_string="asgi-group")
    raise RuntimeError("sync failure")


@app.get("/ignored")
async def ignored():
    spyglass.set_request_options(ignore_error=True)
    raise RuntimeError("ignored failure")


@app.get("/slow")
async def slow(ignore: bool = False):
    if ignore:
        spyglass.set_request_options(ignore_slow=True)
    await asyncio.sleep(0.25)
    return "slow"


@app.get("/log")
async def log_something(force: bool = False):
    if force:
        spyglass.set_request_options(force_logs=True)
    shop_log.warning("asgi warning force=%s", force)
    return "logged"
