"""Mako: rendering a template (``Template.render``, ``render_unicode``; what it includes
and inherits is part of it) is a span ``render <template uri>`` in the ``template``
category."""
from ._patch import Patch, Supports
from ._templates import Renders, traced_render  # noqa: F401  (named by PATCHES)

SUPPORTS = Supports("mako", "1.0")
TIMING = "mako"
PATCHES = (
    Patch("mako.template", "Template", render="traced_render",
          render_unicode="traced_render"),
)


def _name(template):
    module_id = getattr(template, "module_id", "") or ""
    return "<string>" if module_id.startswith("memory:") else template.uri


setup = Renders.setup_for(TIMING, "mako", _name)  # what the patches share
