"""Trace search, the trace-id box, the duration scatter, the waterfall's self time and
critical path, and the logs page, in headless Chromium against a real ``spyglass serve``
filled through OTLP requests. Each page is screenshotted into tests/screenshots/."""
import time

import pytest

from support.browser import SCREENSHOTS

from . import payloads
from .conftest import RunningCollector
from .test_ui import page  # noqa: F401 - the fixture: a page that fails the test on an error or a 4xx

NS = 1_000_000_000
MS = 1_000_000


def _call(trace_id, parent_id, name, start_ns, duration_ms, **attributes):
    return payloads.span(trace_id, payloads.new_span_id(), name, parent_id=parent_id, kind=3, start_ns=start_ns,
                         duration_ms=duration_ms, attrs=attributes)


def _postgres_trace(now_ns):
    """POST /orders: a SQLite call (0-8 ms), a call to the payments service (10-90 ms) that
    queried PostgreSQL (20-50 ms) below it, and a cache read beside it (30-40 ms), off the
    critical path."""
    trace_id, root_id = payloads.new_trace_id(), payloads.new_span_id()
    start = now_ns - 20 * NS
    root = payloads.span(trace_id, root_id, "POST /orders", kind=2, start_ns=start, duration_ms=100.0, attrs={
        "http.request.method": "POST", "http.route": "/orders", "http.response.status_code": 201})
    local = _call(trace_id, root_id, "SELECT sessions", start, 8.0, **{"db.system": "sqlite",
                                                                         "spyglass.category": "sql"})
    remote = _call(trace_id, root_id, "GET payments.internal", start + 10 * MS, 80.0,
                   **{"server.address": "payments.internal", "spyglass.category": "remote"})
    query = _call(trace_id, remote["spanId"], "SELECT payments", start + 20 * MS, 30.0,
                  **{"db.system": "postgresql", "db.query.text": "SELECT * FROM payments WHERE id = ?",
                     "spyglass.category": "sql"})
    cache = _call(trace_id, root_id, "GET cart", start + 30 * MS, 10.0, **{"db.system": "redis"})
    return trace_id, [root, local, remote, query, cache]


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """Requests over the last minutes, none but one of which queried PostgreSQL, and log
    records of two services; ``(collector, the PostgreSQL trace's id, its spans)``."""
    collector = RunningCollector(tmp_path_factory.mktemp("ui-traces") / "ui.db")
    now = time.time_ns()
    spans = []
    for number in range(40):
        _, request = payloads.request_trace(
            "shop", ["/cart", "/products/{id}", "/search"][number % 3], status=500 if number % 9 == 4 else 200,
            duration_ms=15.0 + (number * 37) % 200, start_ns=now - (30 + number * 7) * NS,
            calls=[("redis GET", "nosql", 1.0)])
        request[1]["attributes"] = payloads.attributes({"db.system": "redis", "spyglass.category": "nosql"})
        spans += request
    # A burst: three requests in the same second, a few milliseconds apart
    for number in range(3):
        spans += payloads.request_trace("shop", "/burst", duration_ms=5.0, start_ns=now - 25 * NS + number * 3 * MS)[1]
    assert collector.post_json("traces", payloads.traces("shop", spans))[0] == 200
    trace_id, postgres_spans = _postgres_trace(now)
    assert collector.post_json("traces", payloads.traces("shop", postgres_spans))[0] == 200
    query_span_id = postgres_spans[3]["spanId"]
    collector.post_json("logs", payloads.plain_logs("shop", "payment 77 captured", trace_id, query_span_id,
                                                    severity=13))
    collector.post_json("logs", payloads.plain_logs("shop", "cart 3 read from cache"))
    collector.post_json("logs", payloads.plain_logs("billing", "invoice 12 sent"))
    SCREENSHOTS.mkdir(exist_ok=True)
    yield collector, trace_id, postgres_spans
    collector.stop()


def _shoot(page, name):
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_a_trace_id_pasted_into_the_box_opens_the_trace(page, filled):
    collector, trace_id, _ = filled
    for pasted in (trace_id, f"  {trace_id.upper()} ", trace_id[:10]):
        page.goto(collector.url + "/errors")
        page.fill("form.trace-box input", pasted)
        page.press("form.trace-box input", "Enter")
        page.wait_for_url(f"**/traces/{trace_id}")
        assert "POST /orders" in page.inner_text("h1")


def test_attribute_search_finds_the_trace_that_queried_postgresql(page, filled):
    collector, trace_id, _ = filled
    page.goto(collector.url + "/traces?since=1h")
    page.fill("input[name=attribute]", "db.system=postgresql")
    page.click("form.filters button")
    page.wait_for_url("**attribute=db.system%3Dpostgresql**")
    rows = page.locator("table.traces tbody tr")
    assert rows.count() == 1
    assert "POST /orders" in rows.first.inner_text()
    page.wait_for_selector("figure.scatter[data-drawn='1']")
    _shoot(page, "21-traces-attribute-search")
    rows.first.locator("a").first.click()
    page.wait_for_url(f"**/traces/{trace_id}")


def test_the_list_shows_milliseconds_and_the_scatter_opens_a_trace(page, filled):
    collector, _, _ = filled
    page.goto(collector.url + "/traces?since=1h&route=/burst")
    times = page.locator("table.traces tbody td.time").all_inner_texts()
    assert len(times) == 3 and len(set(times)) == 3  # a burst, told apart by the millisecond
    assert all(len(text.rsplit(".", 1)[1]) == 3 for text in times)
    page.goto(collector.url + "/traces?since=1h")
    page.wait_for_selector("figure.scatter[data-drawn]")
    assert int(page.get_attribute("figure.scatter", "data-drawn")) == 44
    _shoot(page, "22-traces-scatter")
    # The slowest request: the highest point
    x, y, slowest = page.evaluate("""() => {
        const figure = document.querySelector("figure.scatter"), u = figure.uplot;
        const durations = u.data[1].map((ok, i) => ok ?? u.data[2][i]);
        const i = durations.indexOf(Math.max(...durations));
        const box = u.over.getBoundingClientRect();
        return [box.left + u.valToPos(u.data[0][i], "x"), box.top + u.valToPos(durations[i], "y"), durations[i]];
    }""")
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    page.wait_for_url("**/traces/*")
    assert page.inner_text("p.meta").count(f"{slowest:.0f}ms") >= 1 or f"{slowest:.1f}ms" in page.inner_text("p.meta")


def test_the_waterfall_shows_self_time_and_the_critical_path(page, filled):
    collector, trace_id, spans = filled
    page.goto(f"{collector.url}/traces/{trace_id}")
    rows = {row.get_attribute("id"): row for row in page.locator(".waterfall details").all()}
    critical = {span["name"] for span in spans
                if "critical" in (rows[f"span-{span['spanId']}"].get_attribute("class") or "")}
    assert critical == {"POST /orders", "SELECT sessions", "GET payments.internal", "SELECT payments"}
    assert "critical path" in page.inner_text("main")

    def self_time(index):
        return rows[f"span-{spans[index]['spanId']}"].locator("summary .self").inner_text()

    # POST /orders: 100 ms less 0-8 and 10-90 (the cache read inside them); the call: 80 less 30
    assert (self_time(0), self_time(2), self_time(3), self_time(4)) == ("12.0ms", "50.0ms", "30.0ms", "10.0ms")
    assert page.locator(".waterfall .wf-crit").count() >= 5
    _shoot(page, "23-trace-critical-path")


def test_the_logs_page_filters_and_links_to_the_trace(page, filled):
    collector, trace_id, spans = filled
    page.goto(collector.url + "/logs?since=1h")
    assert page.locator("table.logs tbody tr").count() == 3
    _shoot(page, "24-logs")
    page.fill("input[name=q]", "PAYMENT")
    page.select_option("select[name=level]", "warn")
    page.select_option("select[name=service]", "shop")
    page.fill("input[name=logger]", "app")
    page.click("form.filters button")
    page.wait_for_url("**q=PAYMENT**")
    rows = page.locator("table.logs tbody tr")
    assert rows.count() == 1 and "payment 77 captured" in rows.first.inner_text()
    page.goto(f"{collector.url}/logs?since=1h&trace_id={trace_id[:8]}")
    assert page.locator("table.logs tbody tr").count() == 1
    page.click("a.trace-link")
    span_id = spans[3]["spanId"]
    page.wait_for_url(f"**/traces/{trace_id}#span-{span_id}")
    focused = page.locator(f"#span-{span_id}")
    assert focused.get_attribute("open") is not None and "focused" in focused.get_attribute("class")


def test_the_live_tail_shows_new_records(page, filled):
    collector, _, _ = filled
    page.goto(collector.url + "/logs?since=1h&service=billing")
    page.check("#live-tail")
    assert "tail=1" in page.url
    page.wait_for_selector("#tail-state:has-text('live')")
    collector.post_json("logs", payloads.plain_logs("billing", "invoice 13 sent"))
    page.wait_for_selector("table.logs tbody tr.fresh:has-text('invoice 13 sent')", timeout=15_000)
    assert page.locator("table.logs tbody tr").first.inner_text().count("invoice 13 sent") == 1
    _shoot(page, "25-logs-live-tail")
