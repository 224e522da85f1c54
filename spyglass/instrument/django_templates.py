"""Django templates (rendering only; Django's requests are traced by spyglass.instrument.
django): rendering a template, includes and extends too, is a span in the ``template``
category.

| patched | how |
|---|---|
| ``django.template.base.Template.render`` | span ``render <template name>`` |
"""
from ._templates import render_wrapper


def install(agent, module):
    template = module.Template
    template.render = render_wrapper(agent, "django_templates", "django", _name)(template.render)


def _name(template):
    return template.name or getattr(getattr(template, "origin", None), "name", None) or "<string>"
