"""Starlette, and FastAPI on it: spyglass's pure ASGI middleware around each app.

==================================  =======================================================
patched                              why
==================================  =======================================================
``starlette.applications``           when the app builds its middleware stack (on its first
``.Starlette.__call__``              call), the stack is wrapped in
                                     ``spyglass.asgi.SpyglassMiddleware``: outside
                                     ``ServerErrorMiddleware``, so the exception behind a
                                     500 is seen; FastAPI's own ``build_middleware_stack``
                                     is used as it is
==================================  =======================================================

The route template (``/users/{user_id}``, mount prefixes included) is read from the
scope, where Starlette's router leaves the matched route. The app's middleware list,
exception handlers and OpenAPI schema are untouched.
"""
import functools

from ..asgi import SpyglassMiddleware

_ORIGINAL = "__spyglass_original__"


def install(agent, module):
    app_class = module.Starlette
    original = app_class.__call__
    if getattr(original, _ORIGINAL, None) is not None:
        return

    @functools.wraps(original)
    async def __call__(self, scope, receive, send):
        if self.middleware_stack is None:
            self.middleware_stack = SpyglassMiddleware(self.build_middleware_stack())
        await original(self, scope, receive, send)

    setattr(__call__, _ORIGINAL, original)
    app_class.__call__ = __call__
