"""The service page and the metrics page in headless Chromium, against a real ``spyglass serve``
filled through its OTLP receiver: two releases of a service (the second slower on one route,
with an error the first never had), and metrics of two processes of it.

Pages are screenshotted into tests/screenshots/ for a person to look at.
"""
import time

import pytest

from support.browser import SCREENSHOTS

from . import payloads
from .conftest import RunningCollector
from .test_ui import page  # noqa: F401 - the page fixture: no page error, console error or HTTP error

NS = 1_000_000_000
SERVICE = "shop-releases"


def _send(collector, signal, document):
    status, reply = collector.post_json(signal, document)
    assert status == 200, reply


def _release(collector, version, start_ns, checkout_ms):
    spans = []
    for index in range(30):
        at = start_ns + index * 2 * NS
        spans += payloads.request_trace(SERVICE, "/checkout", method="POST", duration_ms=checkout_ms,
                                        start_ns=at)[1]
        spans += payloads.request_trace(SERVICE, "/cart", duration_ms=12.0, start_ns=at + NS // 2)[1]
    _send(collector, "traces", payloads.traces(SERVICE, spans, **{"service.version": version}))


def _error(collector, version, fingerprint, error_type, time_ns):
    document = payloads.error_logs(SERVICE, payloads.error_event_body(error_type, "it broke", fingerprint),
                                   time_ns=time_ns)
    document["resourceLogs"][0]["resource"] = payloads.resource(SERVICE, **{"service.version": version})
    _send(collector, "logs", document)


def _metrics(collector, pid, start_ns):
    document = payloads.runtime_metrics(SERVICE, points=12, pid=pid, start_ns=start_ns, step_s=10)
    metrics = document["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
    for metric in metrics:
        if metric["name"] == "process.memory.usage":  # two processes of 21.75 MB: 43.5 MB in all
            for point in metric["gauge"]["dataPoints"]:
                point["asInt"] = str(21_750_000 * 2 ** 20 // 1_000_000)
    metrics.append({"name": "shop.orders", "unit": "{order}", "sum": {
        "aggregationTemporality": 2, "isMonotonic": True, "dataPoints": [
            {"timeUnixNano": str(start_ns + i * 10 * NS), "asInt": str(5 * i)} for i in range(12)]}})
    _send(collector, "metrics", document)


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    collector = RunningCollector(tmp_path_factory.mktemp("ui-services") / "ui.db")
    now = time.time_ns()
    _release(collector, "1.0", now - 600 * NS, checkout_ms=40.0)
    _error(collector, "1.0", "fp-old", "ValueError", now - 590 * NS)
    _release(collector, "2.0", now - 240 * NS, checkout_ms=160.0)
    _error(collector, "2.0", "fp-old", "ValueError", now - 230 * NS)
    _error(collector, "2.0", "fp-new", "TimeoutError", now - 220 * NS)
    for pid in (101, 102):
        _metrics(collector, pid, now - 150 * NS)
    SCREENSHOTS.mkdir(exist_ok=True)
    yield collector
    collector.stop()


def _visit(page, collector, path):
    response = page.goto(collector.url + path)
    assert response.status == 200, page.content()[:500]


def _drawn_pixels(page, figure):
    """Pixels the chart's canvas has drawn on (not transparent)."""
    return page.evaluate("""(figure) => {
        const canvas = figure.querySelector('.uplot canvas');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let drawn = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i]) drawn++;
        return drawn;
    }""", figure.element_handle())


def test_service_page_charts_releases_and_comparison(page, filled):
    _visit(page, filled, f"/services/{SERVICE}?since=15m")
    page.wait_for_function("document.querySelectorAll('.service-charts .uplot canvas').length == 3",
                           timeout=15_000)
    figures = page.locator(".service-charts figure.chart")
    for index in range(3):
        assert _drawn_pixels(page, figures.nth(index)) > 500
        assert figures.nth(index).get_attribute("data-markers") == "1.0|2.0"
    latency_ticks = figures.nth(1).get_attribute("data-y-ticks").split("|")
    assert all(label.endswith(" ms") for label in latency_ticks if label)
    assert len(set(latency_ticks)) == len(latency_ticks)

    releases = page.inner_text("table.releases")
    assert "1.0" in releases and "2.0" in releases
    slower = page.locator("table.comparison tr.slower")
    assert slower.count() == 1 and "POST /checkout" in slower.inner_text() and "+300%" in slower.inner_text()
    assert "GET /cart" in page.inner_text("table.comparison")
    new_errors = page.inner_text("table.new-errors")
    assert "TimeoutError" in new_errors and "ValueError" not in new_errors
    page.screenshot(path=str(SCREENSHOTS / "21-service.png"), full_page=True)

    with page.expect_navigation():
        page.select_option("select[name=route_choice]", label="POST /checkout")
    assert "route=%2Fcheckout" in page.url and "method=POST" in page.url
    page.wait_for_function("document.querySelectorAll('.service-charts .uplot canvas').length == 3",
                           timeout=15_000)
    assert _drawn_pixels(page, page.locator(".service-charts figure.chart").nth(1)) > 500


def test_services_list_links_to_the_service_page(page, filled):
    _visit(page, filled, "/?since=15m")
    with page.expect_navigation():
        page.click(f"table.data a.service:text('{SERVICE}')")
    assert f"/services/{SERVICE}" in page.url
    page.wait_for_selector("table.comparison")


def test_metrics_page_per_service_with_readable_ticks(page, filled):
    _visit(page, filled, "/metrics?since=15m")
    section = page.locator(f"section.service-metrics[data-service='{SERVICE}']")
    assert "2 processes" in section.inner_text()
    memory = section.locator("figure[data-service-metric='process.memory.usage']")
    memory.scroll_into_view_if_needed()
    page.wait_for_function("(f) => f.querySelector('.uplot canvas') && f.dataset.yTicks",
                           arg=memory.element_handle(), timeout=15_000)
    ticks = [label for label in memory.get_attribute("data-y-ticks").split("|") if label]
    assert ticks and all(label.endswith(" MB") for label in ticks), ticks
    assert len(set(ticks)) == len(ticks), ticks  # no tick repeated
    assert any(float(label.split()[0]) >= 40 for label in ticks), ticks  # the sum, 43.5 MB, not one process's
    # The axis is as wide as its widest label: nothing clipped ("43.5 MB" never "3.5 MB").
    axis_width = page.evaluate("(f) => f.querySelectorAll('.u-axis')[1].getBoundingClientRect().width",
                               memory.element_handle())
    assert axis_width >= int(memory.get_attribute("data-y-label-width"))
    assert "sum of 2 processes" in memory.inner_text()
    assert _drawn_pixels(page, memory) > 500
    utilization = section.locator("figure[data-service-metric='process.cpu.utilization']")
    assert "mean over processes" in utilization.inner_text()

    assert "Custom metrics" in section.inner_text()
    orders = section.locator("figure[data-service-metric='shop.orders']")
    orders.scroll_into_view_if_needed()
    page.wait_for_function("(f) => f.querySelector('.uplot canvas')", arg=orders.element_handle(), timeout=15_000)
    assert "order/s" in orders.get_attribute("data-y-ticks")

    # The grid holds: every chart of a row as wide as the others.
    widths = {round(box["width"]) for box in (f.bounding_box() for f in section.locator(".charts").first
                                               .locator("figure.chart").all())}
    assert len(widths) == 1, widths
    page.screenshot(path=str(SCREENSHOTS / "22-metrics-per-service.png"), full_page=True)

    section.locator("input.per-process").check()
    page.wait_for_function("(f) => f.querySelectorAll('.legend span').length == 2",
                           arg=memory.element_handle(), timeout=15_000)
    assert "testhost:101" in memory.inner_text() and "testhost:102" in memory.inner_text()
    section.locator("details.latest summary").click()
    page.wait_for_function("(s) => s.querySelectorAll('details.latest table').length == 2",
                           arg=section.element_handle(), timeout=15_000)
    assert "process.memory.usage" in section.locator("details.latest").inner_text()
