"""spyglass.wsgi.middleware with a plain WSGI app, served the ways servers serve: the
response read to its end, read in part and closed (werkzeug stops at Content-Length),
failing while it streams, or dropped unread; and how spyglass.wsgi's and spyglass.asgi's
middleware name requests (the method alone, a route hook, the app's view name). What
reached the receiver is checked."""
from support.processes import run_python
from support.web import drive

DRIVER = """
    import json
    import spyglass.wsgi

    class Body:
        # A response iterable with close(), as frameworks return them.
        def __init__(self, chunks, fail_after=None):
            self.chunks, self.fail_after, self.closed = chunks, fail_after, 0
        def __iter__(self):
            for number, chunk in enumerate(self.chunks):
                if number == self.fail_after:
                    raise RuntimeError("the stream broke")
                yield chunk
        def close(self):
            self.closed += 1

    bodies = {}

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        path = environ["PATH_INFO"]
        bodies[path] = Body([b"a", b"b", b"c"], fail_after=1 if path == "/broken" else None)
        return bodies[path]

    traced = spyglass.wsgi.middleware(app)

    def environ(path):
        return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SERVER_NAME": "localhost",
                "wsgi.url_scheme": "http"}

    def start_response(status, headers, exc_info=None):
        return lambda data: None

    # Read to the end, then closed.
    result = traced(environ("/whole"), start_response)
    whole = b"".join(result)
    result.close()
    # Read in part, then closed: the iterator is left where it stopped.
    result = traced(environ("/part"), start_response)
    iterator = iter(result)
    first = next(iterator)
    result.close()
    del iterator, result
    # Failing while streaming.
    result = traced(environ("/broken"), start_response)
    try:
        b"".join(result)
    except RuntimeError as exc:
        broken = str(exc)
    result.close()
    # Dropped unread and unclosed (a test client's response, say): ended when collected.
    result = traced(environ("/dropped"), start_response)
    del result
    print(json.dumps({"whole": whole.decode(), "first": first.decode(), "broken": broken,
                      "closed": {path: body.closed for path, body in bodies.items()}}))
"""


def test_responses_are_unchanged_and_each_request_is_one_span_ended_on_close():
    run = drive(DRIVER, bootstrap="runtime")
    output, = run.outputs
    assert output == {"whole": "abc", "first": "a", "broken": "the stream broke",
                      "closed": {"/whole": 1, "/part": 1, "/broken": 1, "/dropped": 0}}
    spans = run.spans()
    assert sorted(span["attrs"]["url.path"] for span in spans) == ["/broken", "/dropped", "/part",
                                                                    "/whole"]
    by_path = {span["attrs"]["url.path"]: span for span in spans}
    assert "status" not in by_path["/whole"] and "status" not in by_path["/part"]
    assert by_path["/broken"]["status"]["code"] == 2
    error, = run.errors()
    assert "the stream broke" in str(error)


NAMING = """
    import asyncio, json
    import spyglass  # the middleware as README shows it: spyglass.wsgi, spyglass.asgi

    def wsgi_app(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/named":
            environ["spyglass.view_name"] = "accounts.show"  # set by the app while it runs
        if path.startswith("/users/"):
            environ["router.template"] = "/users/{id}"  # as a router leaves what it matched
        if path == "/users/boom":
            raise RuntimeError("the view failed")
        start_response("404 Not Found" if path == "/nowhere" else "200 OK", [])
        return [b"ok"]

    def by_template(environ):
        return environ.get("router.template")

    def broken_hook(environ):
        raise KeyError("the hook's own bug")

    async def asgi_app(scope, receive, send):
        path = scope["path"]
        if path == "/named":
            scope["spyglass.view_name"] = "accounts.show"
        if path.startswith("/users/"):
            scope["router.template"] = "/users/{id}"
        status = 404 if path == "/nowhere" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def wsgi_get(app, path):
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SERVER_NAME": "wsgi.test",
                   "wsgi.url_scheme": "http"}
        try:
            body = b"".join(app(environ, lambda status, headers, exc_info=None: None))
        except RuntimeError as exc:
            body = str(exc).encode()
        print(json.dumps({"stack": "wsgi", "path": path, "body": body.decode()}))

    async def asgi_get(app, path):
        scope = {"type": "http", "method": "GET", "path": path, "headers": [],
                 "query_string": b"", "scheme": "http", "server": ("asgi.test", 80)}
        sent = []

        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message):
            sent.append(message)
        await app(scope, receive, send)
        print(json.dumps({"stack": "asgi", "path": path, "status": sent[0]["status"]}))

    plain = spyglass.wsgi.middleware(wsgi_app)
    hooked = spyglass.wsgi.middleware(wsgi_app, route=by_template)
    for path in ["/nowhere", "/plain", "/named"]:
        wsgi_get(plain, path)
    for path in ["/users/7", "/users/boom", "/named", "/other"]:
        wsgi_get(hooked, path)
    wsgi_get(spyglass.wsgi.middleware(wsgi_app, route=broken_hook), "/users/8")

    async def main():
        plain = spyglass.asgi.middleware(asgi_app)
        hooked = spyglass.asgi.middleware(asgi_app, route=by_template)
        for path in ["/nowhere", "/plain", "/named"]:
            await asgi_get(plain, path)
        for path in ["/users/7", "/named", "/other"]:
            await asgi_get(hooked, path)
        await asgi_get(spyglass.asgi.middleware(asgi_app, route=broken_hook), "/users/8")
    asyncio.run(main())
"""


def test_the_plain_middleware_names_by_the_method_the_route_hook_or_the_view_name():
    run = drive(NAMING, bootstrap="runtime")
    assert run.outputs == drive(NAMING, bootstrap=None).outputs
    for stack in ("wsgi", "asgi"):
        names = sorted((s["attrs"]["url.path"], s["name"], s["attrs"].get("http.route"))
                       for s in run.spans() if s["attrs"]["server.address"] == stack + ".test")
        expected = [
            ("/named", "GET accounts.show", "accounts.show"),   # plain: environ/scope view_name
            ("/named", "GET accounts.show", "accounts.show"),   # hooked: the view name wins
            ("/nowhere", "GET", None),                          # no route: the method alone
            ("/other", "GET", None),                            # the hook said None
            ("/plain", "GET", None),
            ("/users/7", "GET /users/{id}", "/users/{id}"),     # the hook's template
            ("/users/8", "GET", None),                          # the hook raised: no route
        ]
        if stack == "wsgi":
            expected.append(("/users/boom", "GET /users/{id}", "/users/{id}"))  # and failed
        assert names == expected, stack
    error, = run.errors()
    assert error["request"]["route"] == error["_attrs"]["http.route"] == "/users/{id}"
    assert "the hook's own bug" not in run.stderr  # logged on the spyglass logger, quiet
    assert run.receiver.schema_errors == []


def test_import_spyglass_then_the_middleware_as_readme_shows_it_imported_only_then():
    result = run_python("""
        import sys, spyglass
        print([name for name in ("spyglass.wsgi", "spyglass.asgi", "spyglass.web") if name in sys.modules])
        print(spyglass.wsgi.middleware.__module__, spyglass.asgi.middleware.__module__)
    """)
    assert result.stdout.splitlines() == ["[]", "spyglass.web.wsgi spyglass.web.asgi"]
