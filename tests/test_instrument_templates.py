"""Jinja2 and Django template rendering as spans in the template category; what a
template does while rendering is a child of its span."""
import pytest

from support.calls import instrumented, request_span, run_traced

jinja2 = pytest.importorskip("jinja2")
instrumented("jinja2")
sqlite3 = instrumented("sqlite3")


def test_jinja2_render_is_a_span_and_queries_inside_are_its_children(exported):
    conn = sqlite3.connect(":memory:")
    env = jinja2.Environment(loader=jinja2.DictLoader({
        "page.html": "{% for row in rows() %}{{ row[0] }}{% endfor %}"}))
    with request_span():
        html = env.get_template("page.html").render(rows=lambda: conn.execute("SELECT 1, 2"))
        assert jinja2.Template("hi {{ name }}").render(name="x") == "hi x"
    assert html == "1"
    render, = exported.named("render page.html")
    assert render.attributes["spyglass.category"] == "template"
    query, = exported.named("SELECT")
    assert query.parent_id == render.span_id
    assert exported.named("render <string>")
    root, = exported.named("request")
    assert root.attributes["spyglass.agg.template.count"] == 2


def test_django_template_render(receiver):
    # In its own interpreter: Django's settings can be configured once per process.
    pytest.importorskip("django")
    spans, stdout = run_traced(receiver, """
        import django
        from django.conf import settings
        settings.configure(TEMPLATES=[
            {"BACKEND": "django.template.backends.django.DjangoTemplates"}])
        django.setup()
        from django.template import Context, Template
        print(Template("hello {{ who }}").render(Context({"who": "you"})))
    """, expect_spans=2)
    assert stdout.strip() == "hello you"
    span, = [s for s in spans if s["name"].startswith("render")]
    assert span["attrs"]["spyglass.template.engine"] == "django"
    assert span["attrs"]["spyglass.category"] == "template"
