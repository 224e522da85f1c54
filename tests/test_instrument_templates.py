"""Jinja2, Django, Mako and Chameleon template rendering as spans in the template
category; what a template does while rendering is a child of its span."""
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


MAKO = """
    import json, os, sqlite3, sys, tempfile
    from mako.lookup import TemplateLookup
    from mako.template import Template

    folder = tempfile.mkdtemp()
    with open(os.path.join(folder, "base.html"), "w") as handle:
        handle.write("<h1>${self.title()}</h1>${next.body()}")
    with open(os.path.join(folder, "page.html"), "w") as handle:
        handle.write('<%inherit file="base.html"/><%def name="title()">T</%def>\\n'
                     '% for row in rows():\\n${row[0]}\\n% endfor\\n')
    lookup = TemplateLookup(directories=[folder])
    conn = sqlite3.connect(":memory:")
    page = lookup.get_template("page.html").render(rows=lambda: conn.execute("SELECT 1, 2"))
    print(json.dumps([page, type(page).__name__,
                      Template("hi ${name}").render_unicode(name="x")]))
    try:
        Template("${1 / 0}").render()
    except ZeroDivisionError as error:
        print(json.dumps({"raised": type(error).__name__}))
"""


def test_mako_render_is_a_span_and_queries_inside_are_its_children(receiver):
    pytest.importorskip("mako")
    spans, stdout = run_traced(receiver, MAKO, expect_spans=5, SPYGLASS_TIMING_MAKO="0")
    first, second = [__import__("json").loads(line) for line in stdout.splitlines()]
    assert first == ["<h1>T</h1>\n1\n", "str", "hi x"]
    assert second == {"raised": "ZeroDivisionError"}
    renders = {s["name"]: s for s in spans if s["name"].startswith("render")}
    assert set(renders) == {"render page.html", "render <string>"}
    page = renders["render page.html"]
    assert page["attrs"]["spyglass.template.engine"] == "mako"
    assert page["attrs"]["spyglass.category"] == "template"
    assert page["attrs"]["spyglass.slow"] is True  # timing.mako = 0: every render is slow
    query, = [s for s in spans if s["name"] == "SELECT"]
    assert query["parentSpanId"] == page["spanId"]
    failed = [s for s in spans if s["name"] == "render <string>" and s.get("status", {}).get("code") == 2]
    assert failed and failed[0]["attrs"]["spyglass.template.name"] == "<string>"


CHAMELEON = """
    import json, os, tempfile
    from chameleon import PageTemplate, PageTemplateFile

    folder = tempfile.mkdtemp()
    with open(os.path.join(folder, "layout.pt"), "w") as handle:
        handle.write('<html metal:define-macro="page"><body metal:define-slot="body"/></html>')
    path = os.path.join(folder, "page.pt")
    with open(path, "w") as handle:
        handle.write('<html metal:use-macro="load: layout.pt"><body metal:fill-slot="body">'
                     '<p tal:repeat="item items" tal:content="item"/></body></html>')
    page = PageTemplateFile(path)(items=["a", "b"])
    inline = PageTemplate("<b>${who}</b>").render(who="you")
    print(json.dumps([page, type(page).__name__, inline]))
    try:
        PageTemplate("<b>${1 / 0}</b>")()
    except ZeroDivisionError as error:
        print(json.dumps({"raised": type(error).__name__}))
"""


def test_chameleon_render_is_a_span(receiver):
    pytest.importorskip("chameleon")
    spans, stdout = run_traced(receiver, CHAMELEON, expect_spans=4)
    first, second = [__import__("json").loads(line) for line in stdout.splitlines()]
    assert first[1:] == ["str", "<b>you</b>"]
    assert first[0].replace("\n", "") == "<html><body><p>a</p><p>b</p></body></html>"
    assert second == {"raised": "ZeroDivisionError"}
    renders = [s for s in spans if s["name"].startswith("render")]
    assert len(renders) == 3  # the macro's template is part of its user's render
    assert {s["attrs"]["spyglass.template.engine"] for s in renders} == {"chameleon"}
    page, = [s for s in renders if s["name"].endswith("page.pt")]
    assert page["attrs"]["spyglass.category"] == "template"
    assert [s for s in renders if s.get("status", {}).get("code") == 2]
