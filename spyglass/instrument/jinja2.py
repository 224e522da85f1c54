"""Jinja2: rendering a template (``Template.render``, and ``render_async`` where Jinja2
has it) is a span ``render <template name>`` in the ``template`` category."""
from ._patch import Patch, Supports
from ._templates import Renders, traced_render, traced_render_async  # noqa: F401 (PATCHES)

SUPPORTS = Supports("jinja2", "2.11")
TIMING = "jinja2"
PATCHES = (
    Patch("jinja2", "Template", render="traced_render", render_async="traced_render_async"),
)


def _name(template):
    return template.name or "<string>"


setup = Renders.setup_for(TIMING, "jinja2", _name)  # what the patches share
