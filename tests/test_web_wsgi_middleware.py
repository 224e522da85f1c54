"""spyglass.wsgi.middleware with a plain WSGI app, served the ways servers serve: the
response read to its end, read in part and closed (werkzeug stops at Content-Length),
failing while it streams, or dropped unread. What reached the receiver is checked."""
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
