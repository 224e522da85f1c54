"""Django templates (rendering only; Django's requests are traced by
spyglass.instrument.django): rendering a template, includes and extends too
(``Template.render``), is a span ``render <template name>`` in the ``template`` category."""
from ._patch import Patch, Supports
from ._templates import Renders

SUPPORTS = Supports("django", "3.2")
TIMING = "django_templates"
PATCHES = (
    Patch("django.template.base", "Template", render="traced_render"),
)


def setup(agent, module):
    return Renders(agent, TIMING, "django", _name)


def traced_render(render, renders):
    return renders.traced(render)


def _name(template):
    return template.name or getattr(getattr(template, "origin", None), "name", None) or "<string>"
