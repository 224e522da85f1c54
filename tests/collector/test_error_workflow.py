"""The error workflow and slow calls, once per backend (SQLite, PostgreSQL): error groups'
states and regressions, their frequency and breakdowns, slow calls by threshold with their
p95 over time, route filters by substring and template, and a schema 2 database migrated
with its data kept."""
import json
import time

import pytest

from spyglass.collector.otlp_json import decode

from . import payloads

NS = 1_000_000_000


def _error(store, release=None, service="flow", user="user-1", route="/checkout", time_ns=None,
           fingerprint="fp-flow"):
    """Store one error event of the group ``fingerprint``, from a process running ``release``."""
    body = payloads.error_event_body(fingerprint=fingerprint)
    body["user"] = {"id": user} if user else {}
    document = payloads.error_logs(service, body, user=user or "", route=route, time_ns=time_ns)
    extra = {"service.version": release} if release else {}
    document["resourceLogs"][0]["resource"] = payloads.resource(service, **extra)
    store.write(decode("logs", payloads.json_bytes(document)))


def _group(store, service="flow"):
    (group,) = store.error_groups(0, service=service)
    return store.error_group(group["id"])


def test_a_group_is_resolved_ignored_and_reopened_by_hand(make_store):
    store = make_store()
    _error(store, "1.0")
    group = _group(store)
    assert (group["state"], group["regression"], group["state_changed_ns"]) == ("open", False, None)
    resolved = store.set_error_state(group["id"], "resolved", now_ns=123)
    assert resolved == {"id": group["id"], "state": "resolved", "regression": False, "state_changed_ns": 123,
                        "resolved_release": "1.0"}
    assert store.set_error_state(group["id"], "ignored")["state"] == "ignored"
    assert store.error_groups(0, service="flow", states=("open", "resolved")) == []
    assert [g["state"] for g in store.error_groups(0, service="flow", states=("ignored",))] == ["ignored"]
    assert [g["state"] for g in store.error_groups(0, service="flow")] == ["ignored"]  # no filter: all
    assert store.set_error_state(group["id"], "open")["resolved_release"] is None
    assert store.set_error_state(group["id"] + 1000, "resolved") is None
    assert store.set_error_state(1 << 63, "resolved") is None


def test_a_resolved_group_reopens_as_a_regression_in_a_later_release_only(make_store):
    store = make_store()
    _error(store, "1.0")
    group_id = _group(store)["id"]
    store.set_error_state(group_id, "resolved")
    _error(store, "1.0")  # the old release, still running: the fix is not there yet
    _error(store, None)  # a process that says no release: nothing says it is a later one
    assert (_group(store)["state"], _group(store)["count"]) == ("resolved", 3)
    time.sleep(0.01)  # release 2.0's processes are first seen after 1.0's
    _error(store, "2.0")
    group = _group(store)
    assert (group["state"], group["regression"]) == ("open", True)
    assert group["state_changed_ns"] == group["last_seen_ns"]
    assert [g["regression"] for g in store.error_groups(0, service="flow")] == [True]
    # Resolved again, in 2.0: an event of 1.0 (an earlier release) leaves it resolved.
    resolved = store.set_error_state(group_id, "resolved")
    assert (resolved["regression"], resolved["resolved_release"]) == (False, "2.0")
    _error(store, "1.0")
    assert _group(store)["state"] == "resolved"
    # Ignored groups stay ignored, whatever release their errors come from.
    store.set_error_state(group_id, "ignored")
    _error(store, "3.0")
    assert (_group(store)["state"], _group(store)["regression"]) == ("ignored", False)


def test_without_releases_an_error_after_its_resolution_reopens_it(make_store):
    store = make_store()
    now = time.time_ns()
    _error(store, time_ns=now - 10 * NS)
    group_id = _group(store)["id"]
    store.set_error_state(group_id, "resolved", now_ns=now - 5 * NS)
    _error(store, time_ns=now - 6 * NS)  # sent late: it happened before the resolution
    assert _group(store)["state"] == "resolved"
    _error(store, time_ns=now - NS)
    assert (_group(store)["state"], _group(store)["regression"]) == ("open", True)


def test_frequency_and_breakdown_by_route_release_and_user(make_store):
    store = make_store()
    now = time.time_ns() // NS * NS
    for offset, release, user, route in [(50, "1.0", "ann", "/a"), (50, "1.0", "bob", "/a"),
                                         (30, "2.0", "ann", "/b"), (5, "2.0", None, "/a"),
                                         (500, "0.9", "old", "/old")]:  # before the window
        _error(store, release, user=user, route=route, time_ns=now - offset * NS)
    group_id = _group(store)["id"]
    activity = store.error_group_activity(group_id, now - 60 * NS, now, 10 * NS)
    assert activity["frequency"] == [[(now - (60 - 10 * i) * NS) / NS, count]
                                     for i, count in enumerate([0, 2, 0, 1, 0, 1])]
    assert activity["breakdown"] == {
        "route": [{"value": "/a", "events": 3}, {"value": "/b", "events": 1}],
        "release": [{"value": "1.0", "events": 2}, {"value": "2.0", "events": 2}],
        "user": [{"value": "ann", "events": 2}, {"value": "bob", "events": 1}, {"value": None, "events": 1}],
    }
    assert store.error_group_activity(group_id + 1000, now - 60 * NS, now, 10 * NS)["frequency"][0][1] == 0
    assert store.error_group_activity(0, now - NS, now, NS) is None


def _calls(store, service, start_ns, calls, slow_over_ms=None):
    """A request with ``calls`` (statement, category, ms); those over ``slow_over_ms`` marked slow."""
    _, spans = payloads.request_trace(service, "/c", start_ns=start_ns, calls=calls)
    for span in spans[1:]:
        duration_ms = (int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e6
        if slow_over_ms is not None and duration_ms >= slow_over_ms:
            span["attributes"] += payloads.attributes({"spyglass.slow": True})
    store.write(decode("traces", payloads.json_bytes(payloads.traces(service, spans))))


def test_slow_calls_by_threshold_and_their_p95_over_time(make_store):
    store = make_store()
    now = time.time_ns() // NS * NS
    _calls(store, "slowcalls", now - 50 * NS, [("SELECT a FROM t WHERE id = 1", "sql", 90.0),
                                              ("SELECT a FROM t WHERE id = 2", "sql", 2.0),
                                              ("SELECT b FROM u", "sql", 1.0)], slow_over_ms=50)
    _calls(store, "slowcalls", now - 15 * NS, [("SELECT a FROM t WHERE id = 3", "sql", 70.0)], slow_over_ms=50)
    slow = store.slow_calls(now - 60 * NS, service="slowcalls", slow_only=True)
    assert [(c["label"], c["count"], c["total_ms"]) for c in slow] == [("SELECT a FROM t WHERE id = ?", 2, 160.0)]
    every = store.slow_calls(now - 60 * NS, service="slowcalls")
    assert [(c["label"], c["count"]) for c in every] == [("SELECT a FROM t WHERE id = ?", 3), ("SELECT b FROM u", 1)]
    key = slow[0]["key"]
    series = store.slow_call_p95_series(now - 60 * NS, now, 20 * NS, [("slowcalls", key)], slow_only=True)
    assert series == {("slowcalls", key): [[(now - 60 * NS) / NS, 90.0], [(now - 40 * NS) / NS, None],
                                           [(now - 20 * NS) / NS, 70.0]]}
    all_calls = store.slow_call_p95_series(now - 60 * NS, now, 20 * NS, [("slowcalls", key)])
    assert all_calls[("slowcalls", key)][0] == [(now - 60 * NS) / NS, 90.0]  # p95 of 90 and 2
    assert store.slow_call_p95_series(now - NS, now, NS, []) == {}


def test_route_filters_match_by_substring_and_by_template(make_store):
    store = make_store()
    now = time.time_ns()
    for route in ("/users/<int:id>", "/users/{user_id}/posts", "/Orders", "/a_b%c"):
        _, spans = payloads.request_trace("routes", route, start_ns=now - NS)
        store.write(decode("traces", payloads.json_bytes(payloads.traces("routes", spans))))

    def found(route):
        return sorted(t["route"] for t in store.traces(now - 60 * NS, service="routes", route=route))

    assert found("/users/{id}") == ["/users/<int:id>", "/users/{user_id}/posts"]
    assert found("/users/<int:id>/posts") == ["/users/{user_id}/posts"]
    assert found("users") == ["/users/<int:id>", "/users/{user_id}/posts"]
    assert found("orders") == ["/Orders"]
    assert found("GET /orders") == ["/Orders"]  # the root span's name
    assert found("a_b%") == ["/a_b%c"]  # LIKE's wildcards are literal
    assert found("a%c") == [] and found("/posts/{id}") == []
    assert store.service_names(now - 60 * NS) == ["routes"]  # what the service filters offer
    assert store.service_names(time.time_ns() + 60 * NS) == []


def test_a_schema_2_database_is_migrated_with_its_data(db_url, postgres_or_none):
    """What a collector before the error workflow stored reads back, open and not slow."""
    from spyglass.collector import postgres_schema, sqlite_schema
    from spyglass.collector.store import backend_of, open_store

    old_group = ("INSERT INTO error_groups (service, fingerprint, type, message, culprit, first_seen_ns, "
                 "last_seen_ns, count) VALUES ('old', 'fp', 'E', 'm', 'c', 1, {now}, 1)")
    old_span = ("INSERT INTO spans (trace_id, span_id, resource_key, service, name, kind, start_ns, end_ns, "
                "duration_ns, status_code, is_root, is_error, call_key, call_label, attributes) VALUES "
                "('t', 's', 'r', 'old', 'SELECT', 3, {now}, {now}, 5, 0, {false}, {false}, 'k', 'SELECT ?', '{{}}')")
    now = time.time_ns()
    if backend_of(db_url) == "sqlite":
        import sqlite3

        with sqlite3.connect(db_url) as connection:
            connection.executescript("".join(sqlite_schema.MIGRATIONS[:2]))
            connection.execute(old_group.format(now=now))
            connection.execute(old_span.format(now=now, false=0))
            connection.execute("PRAGMA user_version = 2")
    else:
        postgres = postgres_or_none
        postgres.execute(db_url, "CREATE TABLE spyglass_schema (version INTEGER NOT NULL)")
        for script in postgres_schema.MIGRATIONS[:2]:
            postgres.execute(db_url, script)
        postgres.execute(db_url, "INSERT INTO spyglass_schema VALUES (2)")
        postgres.execute(db_url, old_group.format(now=now))
        postgres.execute(db_url, old_span.format(now=now, false="false"))
    store = open_store(db_url)
    try:
        assert store.describe()["schema_version"] == len(sqlite_schema.MIGRATIONS)
        (group,) = store.error_groups(0, service="old")
        assert (group["state"], group["regression"]) == ("open", False)
        assert [c["label"] for c in store.slow_calls(0, service="old")] == ["SELECT ?"]
        assert store.slow_calls(0, service="old", slow_only=True) == []
        assert store.set_error_state(group["id"], "resolved")["resolved_release"] is None
    finally:
        store.close()


@pytest.fixture
def postgres_or_none(request, db_url):
    from spyglass.collector.store import backend_of

    return request.getfixturevalue("postgres") if backend_of(db_url) == "postgresql" else None


# -- through a real ``spyglass serve`` ------------------------------------------------------

def _post_state(collector, group_id, body, content_type="application/json"):
    status, _, reply = collector.request("POST", f"/api/errors/{group_id}", body, {"Content-Type": content_type})
    return status, json.loads(reply)


def test_states_change_through_the_api_and_ignored_groups_are_hidden(collector_on_each_backend):
    collector = collector_on_each_backend
    for fingerprint in ("fp-api-a", "fp-api-b"):
        collector.post_json("logs", payloads.error_logs("api-flow", payloads.error_event_body(fingerprint=fingerprint)))
    first, second = collector.api("/errors", service="api-flow")["groups"]
    assert _post_state(collector, first["id"], b'{"state": "ignored"}') == (200, {
        "id": first["id"], "state": "ignored", "regression": False, "state_changed_ns": pytest.approx(
            time.time_ns(), abs=60 * NS), "resolved_release": None})
    assert _post_state(collector, second["id"], b'{"state": "resolved"}')[1]["state"] == "resolved"
    assert [g["id"] for g in collector.api("/errors", service="api-flow")["groups"]] == [second["id"]]
    assert [g["id"] for g in collector.api("/errors", service="api-flow", state="ignored")["groups"]] == [first["id"]]
    assert len(collector.api("/errors", service="api-flow", state="all")["groups"]) == 2
    detail = collector.api(f"/errors/{second['id']}")
    events = sum(count for _, count in detail["frequency"])
    assert (detail["state"], detail["regression"], events) == ("resolved", False, 1)
    assert detail["breakdown"]["route"] == [{"value": "/checkout", "events": 1}]


@pytest.mark.parametrize("body, content_type, status, reason", [
    (b'{"state": "closed"}', "application/json", 400, "state: use open, resolved or ignored"),
    (b'{"state": ["resolved"]}', "application/json", 400, "state: use open, resolved or ignored"),
    (b'{"state": null}', "application/json", 400, "state: use open, resolved or ignored"),
    (b'{"state": "resolved", "by": "me"}', "application/json", 400, "and nothing else"),
    (b'["resolved"]', "application/json", 400, "and nothing else"),
    (b'{"state": "resolved"', "application/json", 400, "not JSON"),
    (b'\xff\xfe', "application/json", 400, "not JSON"),
    (b"", "application/json", 400, "not JSON"),
    (b"[" * 100_000, "application/json", 413, "exceeds the limit"),
    (b'{"state": "' + b"x" * 5000 + b'"}', "application/json", 413, "exceeds the limit"),
    (b"state=resolved", "application/x-www-form-urlencoded", 415, "send JSON"),
    (b'{"state": "resolved"}', "text/plain", 415, "send JSON"),
])
def test_bad_state_changes_get_4xx_with_a_reason(collector_on_each_backend, body, content_type, status, reason):
    collector = collector_on_each_backend
    collector.post_json("logs", payloads.error_logs("api-bad", payloads.error_event_body(fingerprint="fp-bad")))
    (group,) = collector.api("/errors", service="api-bad")["groups"]
    assert _post_state(collector, group["id"], body, content_type)[0] == status
    assert reason in _post_state(collector, group["id"], body, content_type)[1]["error"]
    assert collector.api(f"/errors/{group['id']}")["state"] == "open"


def test_state_changes_of_nothing(collector_on_each_backend):
    collector = collector_on_each_backend
    assert _post_state(collector, 987654321, b'{"state": "resolved"}')[0] == 404
    assert _post_state(collector, "9" * 30, b'{"state": "resolved"}')[0] == 400
    status, headers, _ = collector.request("POST", "/api/traces", b"{}", {"Content-Type": "application/json"})
    assert (status, headers["Allow"]) == (405, "GET")
    assert collector.request("POST", "/api/nowhere", b"{}", {"Content-Type": "application/json"})[0] == 404


def test_state_changes_need_the_api_key(start_collector):
    collector = start_collector("--api-key", "s3cret")
    headers = {"Content-Type": "application/json"}
    assert collector.request("POST", "/api/errors/1", b'{"state": "resolved"}', headers)[0] == 401
    assert collector.request("POST", "/api/errors/1", b'{"state": "resolved"}',
                             {**headers, "Authorization": "Bearer s3cret"})[0] == 404


def test_empty_pages_name_the_address_the_collector_listens_on(start_collector):
    collector = start_collector()
    status, _, page = collector.request("GET", "/")
    assert status == 200 and f"SPYGLASS_ENDPOINT={collector.url}".encode() in page
    assert str(collector.port).encode() in page and (collector.port == 4318 or b":4318" not in page)
