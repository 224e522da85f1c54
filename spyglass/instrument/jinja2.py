"""Jinja2: rendering a template (``Template.render``, and ``render_async`` where Jinja2
has it) is a span ``render <template name>`` in the ``template`` category."""
from ._patch import Patch, Supports
from ._templates import Renders

SUPPORTS = Supports("jinja2", "2.11")
TIMING = "jinja2"
PATCHES = (
    Patch("jinja2", "Template", render="traced_render", render_async="traced_render_async"),
)


def setup(agent, module):
    return Renders(agent, TIMING, "jinja2", _name)


def traced_render(render, renders):
    return renders.traced(render)


def traced_render_async(render, renders):
    return renders.traced_async(render)


def _name(template):
    return template.name or "<string>"
