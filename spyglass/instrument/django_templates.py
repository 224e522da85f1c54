"""Django templates (rendering only; Django's requests are traced by
spyglass.instrument.django): rendering a template, includes and extends too
(``Template.render``), is a span ``render <template name>`` in the ``template`` category."""
from ._patch import Patch, Supports
from ._templates import Renders, traced_render  # noqa: F401  (named by PATCHES)

SUPPORTS = Supports("django", "3.2")
TIMING = "django_templates"
PATCHES = (
    Patch("django.template.base", "Template", render="traced_render"),
)


def _name(template):
    return template.name or getattr(getattr(template, "origin", None), "name", None) or "<string>"


setup = Renders.setup_for(TIMING, "django", _name)  # what the patches share
