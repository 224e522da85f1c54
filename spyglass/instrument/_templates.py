"""Template rendering as an activated span in the ``template`` category: queries a
template makes while it renders (a lazy queryset) are its children. Shared by the
template engines' instrumentations (jinja2, django_templates)."""
from ._calls import TEMPLATE, CallRecorder, metric_recorder
from ..trace.context import get_active_scope
from ..trace.span import INTERNAL


def traced_render(render, renders):
    """The maker of a ``Patch`` of a render method (see ``_patch``): its traced twin."""
    return renders.traced(render)


def traced_render_async(render, renders):
    return renders.traced_async(render)


class Renders:
    """One engine's renders: ``traced(render)`` and ``traced_async(render)`` are traced
    twins of its render methods; ``name_of(template)`` names a template."""

    def __init__(self, agent, timing_key, engine, name_of):
        self.calls = CallRecorder(agent, timing_key, TEMPLATE, INTERNAL)
        self.engine = engine
        # spyglass.template.render.duration by engine only: a template's name may be made
        # per render (a string template's, an app's generated ones) and has no bound.
        self.metric = metric_recorder("record_template")
        self.name_of = name_of

    @classmethod
    def setup_for(cls, timing_key, engine, name_of):
        """The ``setup(agent, module)`` of an engine's instrumentation."""
        return lambda agent, module: cls(agent, timing_key, engine, name_of)

    def traced(self, render):
        rendering = self.rendering

        def traced_render(template, *args, **kwargs):
            with rendering(template):
                return render(template, *args, **kwargs)

        return traced_render

    def traced_async(self, render):
        rendering = self.rendering

        async def traced_render(template, *args, **kwargs):
            with rendering(template):
                return await render(template, *args, **kwargs)

        return traced_render

    def rendering(self, template):
        return Rendering(self, template)


class Rendering:
    """``with``: the span of one render, active while it renders (outside any trace it is
    ``OUTSIDE``'s, not activated: exported only if slow or failed, see ``_calls``).
    A template renders in tens of microseconds at the least: a context manager's cost is
    nothing beside it."""

    __slots__ = ("renders", "template", "span", "scope")

    def __init__(self, renders, template):
        self.renders = renders
        self.template = template
        self.span = None

    def __enter__(self):
        active = get_active_scope()
        renders = self.renders
        try:
            name = renders.name_of(self.template) or "template"
            if active is None:  # timed, and a trace of its own if slow or failed
                span = renders.calls.start_outside(f"render {name}")
                self.scope = None
            else:
                tracer = active.span._tracer
                span = tracer.start_child(f"render {name}", INTERNAL, active.span)
                self.scope = tracer.scope_manager.activate(span, False)
            attributes = span.attributes
            attributes["code.function.name"] = f"{renders.engine}.render"
            attributes["spyglass.template.name"] = name
            attributes["spyglass.template.engine"] = renders.engine
            self.span = span
        except Exception:
            renders.calls.failed()
        return self

    def __exit__(self, exc_type, exc, traceback):
        if self.span is None:
            return False
        renders = self.renders
        calls = renders.calls
        try:
            if self.scope is not None:
                self.scope.close()
            span = self.span
            calls.finish(span, exc if isinstance(exc, Exception) else None)
            if renders.metric is not None:
                renders.metric(renders.engine, (span.end_ns - span.start_ns) / 1e9)
        except Exception:
            calls.failed()
        return False
