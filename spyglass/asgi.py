"""``app = spyglass.asgi.middleware(app)``: the documented name of the ASGI middleware,
which lives with the request lifecycle in ``spyglass.web.asgi``."""
from .web.asgi import SpyglassMiddleware, middleware

__all__ = ["SpyglassMiddleware", "middleware"]
