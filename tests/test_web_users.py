"""Who the user is: flask-login's current_user, Flask's g.user, Django's request.user,
REMOTE_USER, or ``spyglass.username``; only the id leaves the process unless
send_default_pii is on (then also the name, the e-mail address and the client's address)."""
import pytest

from support.web import drive

FLASK = """
    import json
    from flask_controls_app import app

    def go(client, path, **environ):
        response = client.get(path, environ_base=environ)
        response.close()
        print(json.dumps({"path": path, "status": response.status_code}))

    member = app.test_client()
    go(member, "/login/m-1")
    go(member, "/member")
    stranger = app.test_client()
    go(stranger, "/member")
    go(stranger, "/g-user")
    go(stranger, "/remote-user", REMOTE_USER="ruth")
    go(stranger, "/fail?n=named", **{"spyglass.username": "u-explicit", "REMOTE_USER": "ruth"})
"""

DJANGO = """
    import json, os
    os.environ["DJANGO_SETTINGS_MODULE"] = "djangoapp.settings"
    import django
    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    dora = User.objects.create_user("dora", "dora@example.com", "pw-unused")
    member = Client(raise_request_exception=False)
    member.force_login(dora)
    for client, path, extra in ((member, "/whoami", {}), (member, "/quiet", {}),
                                (Client(raise_request_exception=False), "/whoami", {}),
                                (Client(raise_request_exception=False), "/quiet",
                                 {"REMOTE_USER": "remy"})):
        response = client.get(path, **extra)
        print(json.dumps({"path": path, "status": response.status_code, "id": dora.pk}))
"""


def users(run):
    """error message -> (the event's user, its span's enduser.id, the span)."""
    spans = {span["spanId"]: span for span in run.spans()}
    found = {}
    for event in run.errors():
        span = spans[event["_record"]["spanId"]]
        found[event["message"]] = (event.get("user"), span["attrs"].get("enduser.id"), span)
    return found


@pytest.fixture(scope="module")
def flask_run():
    return drive(FLASK)


@pytest.fixture(scope="module")
def flask_pii_run():
    return drive(FLASK, SPYGLASS_SEND_DEFAULT_PII="true")


def test_flask_users_are_sent_by_id_only(flask_run):
    found = users(flask_run)
    assert found["member page for True"][:2] == ({"id": "m-1"}, "m-1")  # flask-login
    assert found["member page for False"][:2] == (None, None)  # anonymous
    assert found["g.user page"][:2] == ({"id": "31"}, "31")
    assert found["remote user page"][:2] == ({"id": "ruth"}, "ruth")
    assert found["failure named apple"][:2] == ({"id": "u-explicit"}, "u-explicit")
    text = flask_run.receiver.raw_text()
    for personal in ("mia", "gus@example.com", "127.0.0.1", "client_address"):
        assert personal not in text
    assert all("client.address" not in span["attrs"] for span in flask_run.spans())


def test_flask_users_with_send_default_pii(flask_pii_run):
    found = users(flask_pii_run)
    assert found["member page for True"][0] == {"id": "m-1", "username": "mia",
                                                 "email": "mia@example.com"}
    assert found["g.user page"][0] == {"id": "31", "username": "gus", "email": "gus@example.com"}
    assert found["remote user page"][0] == {"id": "ruth", "username": "ruth"}
    user, enduser, span = found["failure named apple"]
    assert user == {"id": "u-explicit", "username": "u-explicit"} and enduser == "u-explicit"
    assert span["attrs"]["client.address"] == "127.0.0.1"
    assert [e for e in flask_pii_run.errors() if e["message"] == "g.user page"][0][
        "request"]["client_address"] == "127.0.0.1"
    assert flask_pii_run.receiver.schema_errors == []


@pytest.mark.parametrize("pii", [False, True])
def test_django_request_user(pii):
    run = drive(DJANGO, bootstrap="django", SPYGLASS_SEND_DEFAULT_PII=str(pii).lower())
    dora_id = str(run.outputs[0]["id"])
    found = users(run)
    expected = {"id": dora_id, "username": "dora", "email": "dora@example.com"} if pii \
        else {"id": dora_id}
    assert found["whoami True"][:2] == (expected, dora_id)
    assert found["whoami False"][:2] == (None, None)  # AnonymousUser
    # A view that never evaluated request.user: nothing read, no query made for it.
    quiet = [(e.get("user"), e["_record"]["spanId"]) for e in run.errors() if e["message"] == "quiet"]
    assert len(quiet) == 2
    remote = {"id": "remy", "username": "remy"} if pii else {"id": "remy"}
    assert sorted((user or {}).get("id", "") for user, _ in quiet) == ["", "remy"]
    assert remote in [user for user, _ in quiet]
    assert ("dora@example.com" in run.receiver.raw_text()) is pii
    assert run.receiver.schema_errors == []
