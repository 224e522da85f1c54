"""An unmodified Pyramid app: it knows nothing of spyglass. ``app`` is its WSGI app."""
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPNotFound
from pyramid.response import Response
from pyramid.view import exception_view_config, view_config


@view_config(route_name="user", renderer="json")
def user(request):
    return {"id": int(request.matchdict["id"])}


@view_config(route_name="boom")
def boom(request):
    return Response(str(1 / 0))


@view_config(route_name="invalid")
def invalid(request):
    raise ValueError("the app answers this one itself")


@view_config(route_name="broken")
def broken(request):
    raise KeyError("shown on the app's own error page")


@view_config(route_name="missing")
def missing(request):
    raise HTTPNotFound()


@view_config(route_name="stream")
def stream(request):
    response = Response()
    response.app_iter = iter([b"chunk 0\n", b"chunk 1\n"])
    return response


@view_config(route_name="subscribe")
def subscribe(request):
    return Response("subscribed")


@view_config(route_name="health")
def health(request):
    return Response("ok")


@exception_view_config(ValueError)
def bad_request(exc, request):
    return Response("bad request", status=400)


@exception_view_config(KeyError)
def error_page(exc, request):
    return Response("sorry", status=500)


def make_app():
    with Configurator() as config:
        for name, pattern in [("user", "/users/{id}"), ("boom", "/boom"), ("invalid", "/invalid"),
                              ("broken", "/broken"), ("missing", "/missing"),
                              ("stream", "/stream"), ("health", "/health")]:
            config.add_route(name, pattern)
        config.add_route("subscribe", "/subscribe", request_method="POST")  # a GET matches no route
        config.scan(__name__)
        return config.make_wsgi_app()


app = make_app()
