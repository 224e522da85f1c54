"""Starlette, and FastAPI on it: spyglass's pure ASGI middleware around each app.

``Starlette.__call__`` is patched: when the app builds its middleware stack (on its first
call), the stack is wrapped in ``spyglass.web.asgi.SpyglassMiddleware``, outside
``ServerErrorMiddleware``, so the exception behind a 500 is seen; FastAPI's own
``build_middleware_stack`` is used as it is.

The route template (``/users/{user_id}``, mount prefixes included) is read from the
scope, where Starlette's router leaves the matched route. The app's middleware list,
exception handlers and OpenAPI schema are untouched.
"""
from ._patch import Patch, Supports
from ..web.asgi import SpyglassMiddleware

SUPPORTS = Supports("starlette", "0.20")
TIMING = None
PATCHES = (
    Patch("starlette.applications", "Starlette", __call__="wrapping_stack"),
)


def wrapping_stack(original, agent):
    async def __call__(self, scope, receive, send):
        if self.middleware_stack is None:
            self.middleware_stack = SpyglassMiddleware(self.build_middleware_stack())
        await original(self, scope, receive, send)

    return __call__
