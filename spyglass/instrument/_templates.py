"""Template rendering as an activated span in the ``template`` category: queries a
template makes while it renders (a lazy queryset) are its children."""
import functools

from ._calls import TEMPLATE, Calls
from ..trace.context import get_active_scope
from ..trace.span import INTERNAL


def render_wrapper(agent, timing_key, engine, name_of, is_async=False):
    """``make(render)`` -> a traced render; ``name_of(template)`` names the template."""
    calls = Calls(agent, timing_key, TEMPLATE, INTERNAL)

    def start(template):
        scope = get_active_scope()
        if scope is None:
            return None
        try:
            name = name_of(template) or "template"
            tracer = scope.span._tracer
            span = tracer.start_child(f"render {name}", INTERNAL, scope.span)
            span.attributes["code.function.name"] = f"{engine}.render"
            span.attributes["spyglass.template.name"] = name
            span.attributes["spyglass.template.engine"] = engine
            return span, tracer.scope_manager.activate(span, False)
        except Exception:
            calls.failed()
            return None

    def finish(started, error=None):
        span, scope = started
        try:
            scope.close()
            calls.finish(span, error)
        except Exception:
            calls.failed()

    def make(render):
        if is_async:
            async def traced(self, *args, **kwargs):
                started = start(self)
                if started is None:
                    return await render(self, *args, **kwargs)
                try:
                    result = await render(self, *args, **kwargs)
                except Exception as error:
                    finish(started, error)
                    raise
                finish(started)
                return result
        else:
            def traced(self, *args, **kwargs):
                started = start(self)
                if started is None:
                    return render(self, *args, **kwargs)
                try:
                    result = render(self, *args, **kwargs)
                except Exception as error:
                    finish(started, error)
                    raise
                finish(started)
                return result
        return functools.wraps(render)(traced)

    return make
