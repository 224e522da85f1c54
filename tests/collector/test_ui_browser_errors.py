"""The error workflow and slow calls in headless Chromium, against a real ``spyglass serve``
filled through real OTLP requests: resolving an error with the page's buttons, a
regression in a later release, ignored groups hidden, the frequency chart, slow calls by
threshold with a switch for all. Each page is screenshotted into tests/screenshots/."""
import time

import pytest

from support.browser import SCREENSHOTS

from . import payloads
from .conftest import RunningCollector

NS = 1_000_000_000
SLOW_SQL = "SELECT * FROM orders WHERE customer_id = ? ORDER BY created DESC"
FAST_SQL = "SELECT name FROM customers WHERE id = ?"


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    running = RunningCollector(tmp_path_factory.mktemp("ui-errors") / "ui.db")
    now = time.time_ns()
    for index in range(12):  # requests with a slow query (marked so, as the sensor does) and a fast one
        _, spans = payloads.request_trace("orders", "/orders/<int:id>", start_ns=now - (600 - 40 * index) * NS,
                                          calls=[(SLOW_SQL.replace("?", "7"), "sql", 80.0 + 10 * (index % 4)),
                                                 (FAST_SQL.replace("?", "7"), "sql", 0.4)])
        spans[1]["attributes"] += payloads.attributes({"spyglass.slow": True})
        assert running.post_json("traces", payloads.traces("orders", spans, **{"service.version": "1"}))[0] == 200
    SCREENSHOTS.mkdir(exist_ok=True)
    yield running
    running.stop()


def _error(collector, fingerprint, release, user="user-1", route="/orders/<int:id>", error_type="ValueError",
           ago_s=1):
    body = payloads.error_event_body(error_type, f"{fingerprint} went wrong", fingerprint)
    document = payloads.error_logs("orders", body, user=user, route=route, time_ns=time.time_ns() - ago_s * NS)
    document["resourceLogs"][0]["resource"] = payloads.resource("orders", **{"service.version": release})
    assert collector.post_json("logs", document)[0] == 200
    return next(g for g in collector.api("/errors", service="orders", state="all")["groups"]
                if g["fingerprint"] == fingerprint)


@pytest.fixture
def page(browser):
    page = browser.new_page()
    problems = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: problems.append(f"console: {message.text}") if message.type == "error" else None)
    page.on("response", lambda response: problems.append(f"HTTP {response.status}: {response.url}")
            if response.status >= 400 else None)
    yield page
    page.close()
    assert problems == []


def _visit(page, collector, path):
    response = page.goto(collector.url + path)
    assert response.status == 200, page.content()[:500]


def _shoot(page, name):
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_resolving_an_error_with_its_button_changes_its_state(page, collector):
    group = _error(collector, "fp-resolve", "1")
    _visit(page, collector, f"/errors/{group['id']}")
    assert page.inner_text("form.state-control .state") == "open"
    with page.expect_navigation():
        page.click("form.state-control button[value=resolved]")
    assert page.inner_text("form.state-control .state") == "resolved"
    assert "in release 1" in page.inner_text("form.state-control")
    assert collector.api(f"/errors/{group['id']}")["state"] == "resolved"
    _shoot(page, "11-error-resolved")
    with page.expect_navigation():
        page.click("form.state-control button[value=open]")
    assert collector.api(f"/errors/{group['id']}")["state"] == "open"


def test_an_error_resolved_in_release_1_that_happens_in_release_2_is_a_regression(page, collector):
    group = _error(collector, "fp-regress", "1", error_type="KeyError")
    _visit(page, collector, f"/errors/{group['id']}")
    with page.expect_navigation():
        page.click("form.state-control button[value=resolved]")
    _error(collector, "fp-regress", "1", error_type="KeyError")  # release 1 still running: no news
    _visit(page, collector, "/errors?service=orders")
    row = page.locator("table.errors tbody tr", has_text="fp-regress went wrong")
    assert row.locator(".state").all_inner_texts() == ["resolved"]
    time.sleep(0.05)
    _, spans = payloads.request_trace("orders", "/orders/<int:id>")  # release 2 starts
    collector.post_json("traces", payloads.traces("orders", spans, pid=4343, **{"service.version": "2"}))
    _error(collector, "fp-regress", "2", user="user-7", error_type="KeyError")
    _visit(page, collector, "/errors?service=orders")
    assert row.locator(".state").all_inner_texts() == ["open", "regression"]
    _shoot(page, "12-errors-with-a-regression")
    row.locator("a").first.click()
    page.wait_for_load_state()
    control = page.inner_text("form.state-control")
    assert "regression" in control and "came back" in control
    releases = page.inner_text(".breakdown-release")
    assert "1" in releases and "2" in releases
    assert "user-7" in page.inner_text(".breakdown-user")
    _shoot(page, "13-error-regression-detail")


def test_ignored_errors_are_hidden_unless_asked_for(page, collector):
    group = _error(collector, "fp-ignore", "1", error_type="TimeoutError")
    _visit(page, collector, f"/errors/{group['id']}")
    with page.expect_navigation():
        page.click("form.state-control button[value=ignored]")
    _visit(page, collector, "/errors?service=orders")
    assert "fp-ignore went wrong" not in page.inner_text("main")
    with page.expect_navigation():
        page.click(".tabs a:text-is('ignored')")
    assert "state=ignored" in page.url and "service=orders" in page.url  # a URL to share
    assert page.locator("table.errors tbody tr").all_inner_texts()[0].startswith("TimeoutError")
    assert len(page.locator("table.errors tbody tr").all_inner_texts()) == 1


def test_the_frequency_chart_draws(page, collector):
    for ago_s in (900, 600, 590, 300, 5):
        group = _error(collector, "fp-chart", "1", error_type="ZeroDivisionError", ago_s=ago_s)
    _visit(page, collector, f"/errors/{group['id']}?since=15m")
    page.wait_for_selector("figure.frequency .uplot canvas")
    # Bars are drawn in the series' red: count the canvas's pixels of that colour.
    red = page.evaluate("""() => {
        const canvas = document.querySelector("figure.frequency canvas");
        const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        let count = 0;
        for (let i = 0; i < pixels.length; i += 4) {
            if (pixels[i] > 180 && pixels[i + 1] < 120 && pixels[i + 3] > 0) count++;
        }
        return count;
    }""")
    assert red > 50
    assert "4 events in the last 15m" in page.inner_text("main")
    _shoot(page, "14-error-frequency")


def test_the_service_filter_on_errors_and_slow_calls_is_in_the_url(page, collector):
    for path in ("/errors", "/slow-calls"):
        _visit(page, collector, path)
        with page.expect_navigation():
            page.select_option("select[name=service]", "orders")
        assert "service=orders" in page.url


def test_slow_calls_show_the_slow_by_default_and_all_with_the_switch(page, collector):
    _visit(page, collector, "/slow-calls")
    text = page.inner_text("table.calls")
    assert SLOW_SQL in text and FAST_SQL not in text
    assert page.locator("table.calls svg.sparkline polyline").count() == 1
    _shoot(page, "15-slow-calls-slow-only")
    with page.expect_navigation():
        page.click(".tabs a:text-is('all calls')")
    assert "all=1" in page.url
    text = page.inner_text("table.calls")
    assert SLOW_SQL in text and FAST_SQL in text
    _shoot(page, "16-slow-calls-all")
    with page.expect_navigation():
        page.click(".tabs a:text-is('p95')")
    assert "all=1" in page.url and "sort=p95" in page.url  # the switch is kept
