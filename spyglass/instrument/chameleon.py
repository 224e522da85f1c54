"""Chameleon: rendering a template (``BaseTemplate.render``, which ``PageTemplate``,
``PageTemplateFile`` and calling a template run; the macros it uses are part of it) is a
span ``render <template file>`` in the ``template`` category."""
from ._patch import Patch, Supports
from ._templates import Renders, traced_render  # noqa: F401  (named by PATCHES)

SUPPORTS = Supports("chameleon", "3.0")
TIMING = "chameleon"
PATCHES = (
    Patch("chameleon.template", "BaseTemplate", render="traced_render"),
)


def _name(template):
    return str(getattr(template, "filename", None) or "<string>")


setup = Renders.setup_for(TIMING, "chameleon", _name)  # what the patches share
