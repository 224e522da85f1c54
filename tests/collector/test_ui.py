"""The web UI in headless Chromium, against a collector filled through real OTLP requests.

Every page is screenshotted into tests/screenshots/ for a person to look at.
"""
import pytest

from support.browser import SCREENSHOTS

from . import demo_data
from .conftest import RunningCollector


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    collector = RunningCollector(tmp_path_factory.mktemp("ui") / "ui.db")
    providers = []

    def otel_tracer(service):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{collector.url}/v1/traces")))
        providers.append(provider)
        return provider

    trace_id = demo_data.fill(collector, otel_tracer)
    for provider in providers:
        provider.shutdown()
    SCREENSHOTS.mkdir(exist_ok=True)
    yield collector, trace_id
    collector.stop()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    problems = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: problems.append(f"console: {message.text}")
            if message.type == "error" and "404" not in message.text else None)
    page.on("response", lambda response: problems.append(f"HTTP {response.status}: {response.url}")
            if response.status >= 400 and "/nowhere" not in response.url and "/traces/000" not in response.url
            else None)
    yield page
    page.close()
    assert problems == []


def _visit(page, filled, path, name):
    collector, _ = filled
    response = page.goto(collector.url + path)
    assert response.status == 200, page.content()[:500]
    return page


def _shoot(page, name):
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_services_page(page, filled):
    _visit(page, filled, "/", "services")
    assert page.locator("table.data").first.inner_text().count("shop") >= 1
    assert "POST /checkout" in page.inner_text("main")
    assert "billing" in page.inner_text("main")
    _shoot(page, "01-services")


def test_traces_page_with_filters(page, filled):
    _visit(page, filled, "/traces?service=shop", "traces")
    rows = page.locator("table.traces tbody tr")
    assert rows.count() > 20
    _shoot(page, "02-traces")
    page.select_option("select[name=service]", "shop")
    page.fill("input[name=route]", "/checkout")
    page.check("input[name=errors]")
    page.click("form.filters button")
    page.wait_for_load_state()
    texts = page.locator("table.traces tbody tr").all_inner_texts()
    assert texts and all("POST /checkout" in text and "500" in text for text in texts)
    _shoot(page, "03-traces-filtered")


def test_trace_waterfall_shows_attributes_sql_and_stack(page, filled):
    _, trace_id = filled
    _visit(page, filled, f"/traces/{trace_id}", "trace")
    rows = page.locator(".waterfall details")
    assert rows.count() == 3
    rows.nth(2).locator("summary").click()
    rows.nth(1).locator("summary").click()
    detail = page.inner_text(".waterfall")
    headings = detail.lower()  # h4 is styled uppercase
    assert "SELECT * FROM carts WHERE id = 9" in detail
    assert "spyglass.slow\ttrue" in detail  # JSON values, not Python's reprs
    assert "spyglass.category" in detail and "where it was called" in headings and "models.py" in detail
    assert "cart 9 loaded with 2 items" in page.inner_text("main")
    _shoot(page, "04-trace-waterfall")


def test_slow_calls_page(page, filled):
    _visit(page, filled, "/slow-calls?all=1", "slow")  # by default only the slow ones (billing's are not)
    text = page.inner_text("table.calls")
    assert "SELECT * FROM products WHERE name LIKE ? ORDER BY rank LIMIT ?" in text
    assert "INSERT INTO invoices VALUES (?, ?)" in text
    _shoot(page, "05-slow-calls")
    page.click("text=p95")
    page.wait_for_load_state()
    _shoot(page, "06-slow-calls-by-p95")


def test_errors_and_error_detail(page, filled):
    _visit(page, filled, "/errors", "errors")
    text = page.inner_text("table.errors")
    assert "ValueError" in text and "TimeoutError" in text and "KeyError" in text
    _shoot(page, "07-errors")
    page.click("text=ValueError")
    page.wait_for_load_state()
    main = page.inner_text("main")
    for expected in ("users affected", "raise ValueError('bad input')", "caused by KeyError", "Breadcrumbs",
                     "User-Agent", "user-1", "cart 9 loaded with 2 items", "Recent events"):
        assert expected in main, expected
    page.locator("ol.frames details").first.evaluate("d => d.open = true")
    assert "'[1, 2]'" in page.inner_text("main")
    _shoot(page, "08-error-detail")


def test_metrics_charts_draw(page, filled):
    _visit(page, filled, "/metrics?since=15m", "metrics")
    page.wait_for_function("document.querySelectorAll('.uplot canvas').length >= 6", timeout=10_000)
    sections = page.locator("section.service-metrics")  # one per service, its processes added up
    assert sections.count() == 2
    assert "process.memory.usage" in page.inner_text("main")
    _shoot(page, "09-metrics")


def test_unknown_pages_and_traces_are_404(page, filled):
    collector, _ = filled
    assert page.goto(collector.url + "/traces/" + "0" * 32).status == 404
    assert page.goto(collector.url + "/nowhere").status == 404
    _shoot(page, "10-not-found")
