"""Django, automatic under AUTOWRAPT_BOOTSTRAP=django with no settings change: sync and
async views through Django's own test clients, checked at a real OTLP receiver."""
import pytest

from support.web import assert_no_route, drive

DRIVER = """
    import asyncio, json, os
    os.environ["DJANGO_SETTINGS_MODULE"] = "djangoapp.settings"
    import django
    django.setup()
    from django.conf import settings
    from django.test import AsyncClient, Client

    def show(path, response):
        body = b"".join(response.streaming_content) if response.streaming else response.content
        print(json.dumps({"path": path, "status": response.status_code, "body": body.decode(),
                          "headers": sorted(response.headers.items())}))

    client = Client(raise_request_exception=False)
    for path in ["/users/7?token=tok-SECRET-1", "/boom", "/missing", "/stream", "/async/bob",
                 "/nowhere", "/subscribe"]:
        show(path, client.get(path, HTTP_AUTHORIZATION="Bearer auth-SECRET-2"))
    show("/login", client.post("/login", {"password": "pw-SECRET-3", "user": "x"}))

    async def main():
        async_client = AsyncClient(raise_request_exception=False)
        show("async /async/alice", await async_client.get("/async/alice"))
        show("async /async-boom", await async_client.get("/async-boom"))
    asyncio.run(main())
    print(json.dumps({"middleware": settings.MIDDLEWARE}))
"""


@pytest.fixture(scope="module")
def run():
    return drive(DRIVER, bootstrap="django")


def test_spans_are_named_by_url_pattern(run):
    names = {span["name"] for span in run.spans()}
    assert {"GET /users/<int:uid>", "GET /boom", "GET /missing", "GET /stream",
            "GET /async/<slug:name>", "POST /login", "GET /async-boom"} <= names
    span = run.span("GET /users/<int:uid>")
    assert span["kind"] == 2
    assert span["attrs"]["http.response.status_code"] == 200
    assert span["attrs"]["url.path"] == "/users/7"
    assert span["attrs"]["server.address"] == "testserver"


def test_a_request_no_url_pattern_matched_is_named_by_its_method_without_a_route(run):
    assert_no_route(run.spans(), "/nowhere", 404)
    # Django's URL patterns do not match methods: a 405 comes from the view of the pattern
    # that matched, and the request is named by it.
    subscribe = run.span("GET /subscribe")
    assert subscribe["attrs"]["http.route"] == "/subscribe"
    assert subscribe["attrs"]["http.response.status_code"] == 405


def test_sync_and_async_exceptions_are_reported_once(run):
    for name, kind in (("GET /boom", "ZeroDivisionError"), ("GET /async-boom", "RuntimeError"),
                       ("POST /login", "ValueError")):
        span = run.span(name)
        assert span["status"]["code"] == 2
        assert [e for e in span["events"] if e["name"] == "exception"]
        errors = [e for e in run.errors() if e["type"] == kind]
        assert len(errors) == 1, kind  # Django logs it too: still one event
        assert errors[0]["_record"]["traceId"] == span["traceId"]
    assert run.span("GET /missing").get("status", {}).get("code", 0) == 0


def test_settings_and_responses_are_untouched(run):
    assert run.outputs[-1]["middleware"] == [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ]
    plain = drive(DRIVER, bootstrap=None)
    assert plain.outputs == run.outputs


def test_secrets_are_scrubbed(run):
    text = run.receiver.raw_text()
    for secret in ("tok-SECRET-1", "auth-SECRET-2", "pw-SECRET-3"):
        assert secret not in text
    login, = [e for e in run.errors() if e["type"] == "ValueError"]
    assert login["request"]["data"]["password"] == "[Filtered]"
    assert run.receiver.schema_errors == []
