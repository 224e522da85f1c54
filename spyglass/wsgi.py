"""``app = spyglass.wsgi.middleware(app)``: the documented name of the WSGI middleware,
which lives with the request lifecycle in ``spyglass.web.wsgi``."""
from .web.wsgi import middleware

__all__ = ["middleware"]
