"""Jinja2: rendering a template is a span in the ``template`` category.

| patched | how |
|---|---|
| ``jinja2.Template.render`` / ``render_async`` | span ``render <template name>`` |
"""
from ._templates import render_wrapper


def install(agent, module):
    template = module.Template
    template.render = render_wrapper(agent, "jinja2", "jinja2", _name)(template.render)
    if "render_async" in template.__dict__:
        template.render_async = render_wrapper(agent, "jinja2", "jinja2", _name,
                                               is_async=True)(template.render_async)


def _name(template):
    return template.name or "<string>"
