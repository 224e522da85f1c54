"""opentracing's own compatibility suites against spyglass's tracer, every check on."""
import asyncio
import contextvars
import threading

import opentracing
from opentracing.harness.api_check import APICompatibilityCheckMixin
from opentracing.harness.scope_check import ScopeCompatibilityCheckMixin

from spyglass.trace.context import Scope, ScopeManager, activate
from spyglass.trace.span import Span, SpanContext, new_root_span, new_span
from spyglass.trace.tracer import Tracer


class TestAPICompatibility(APICompatibilityCheckMixin):
    def tracer(self):
        return Tracer()

    def check_baggage_values(self):
        return True

    def check_scope_manager(self):
        return True

    def is_parent(self, parent, span):
        if parent is None:
            return span.parent_id is None
        return span.parent_id == parent.context.span_id and \
            span.context.trace_id == parent.context.trace_id


class TestScopeCompatibility(ScopeCompatibilityCheckMixin):
    def scope_manager(self):
        return ScopeManager()

    def run_test(self, test_fn):
        # Each check in a context of its own, as a new thread has: test_close_wrong_order
        # leaves a scope active on purpose.
        contextvars.Context().run(test_fn)


class TestScopeCompatibilityInAsyncio(ScopeCompatibilityCheckMixin):
    def scope_manager(self):
        return ScopeManager()

    def run_test(self, test_fn):
        async def in_task():
            test_fn()

        asyncio.run(in_task())


def test_threads_see_their_own_active_span():
    tracer = Tracer()
    seen = {}

    def worker(name):
        with tracer.start_active_span(name):
            barrier.wait()
            seen[name] = tracer.active_span.operation_name

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"a": "a", "b": "b"}
    assert tracer.active_span is None


def test_asyncio_tasks_inherit_and_isolate():
    tracer = Tracer()

    async def child(name):
        parent = tracer.active_span
        with tracer.start_active_span(name) as scope:
            await asyncio.sleep(0)
            return parent, scope.span, tracer.active_span

    async def main():
        with tracer.start_active_span("root") as root:
            results = await asyncio.gather(child("c1"), child("c2"))
            return root.span, results, tracer.active_span

    root, results, active_after = asyncio.run(main())
    assert active_after is root
    for parent, span, active in results:
        assert parent is root and active is span
        assert span.parent_id == root.context.span_id


def test_a_scope_closed_from_a_copied_context_leaves_the_original_active():
    # A task or thread that inherited the context may close the scope; its token belongs
    # to the original context, which must not change, and nothing may raise.
    tracer = Tracer()
    scope = tracer.start_active_span("shared", finish_on_close=False)
    copied = contextvars.copy_context()
    assert copied.run(lambda: (scope.close(), tracer.active_span)[1]) is None
    assert tracer.active_span is scope.span
    scope.close()
    scope.close()  # a second close is a no-op
    assert tracer.active_span is None


def _slot_values(obj, exclude=()):
    names = {name for klass in type(obj).__mro__ for name in getattr(klass, "__slots__", ())}
    return {name: getattr(obj, name, "<unset>") for name in names - set(exclude)}


def test_start_active_span_makes_spans_and_scopes_as_their_constructors_do():
    # start_active_span writes new_root_span and activate out (a Python call costs about
    # as much as what they do in CPython 3.11): what it makes must not drift.
    tracer = Tracer()
    with tracer.start_active_span("op", finish_on_close=False) as scope:
        root = scope.span
        made = new_root_span(tracer, root.trace_id, root.sampled, root.span_id, "op",
                             root.start_ns)
        assert _slot_values(root, {"local"}) == _slot_values(made, {"local"})
        assert root.local is root and made.local is made
        with tracer.start_active_span("child") as inner:
            child = inner.span
            made = new_span(tracer, root, child.span_id, root.span_id, "child", child.start_ns)
            assert _slot_values(child) == _slot_values(made)
    constructed = activate(scope.manager, root, False)
    assert _slot_values(scope, {"_token"}) == _slot_values(constructed, {"_token"})
    constructed.close()


def test_spans_and_scopes_are_made_by_their_functions_not_by_a_class_call_with_arguments():
    # Their classes keep object's __init__ (see trace.span): a call with arguments is a
    # mistake, and says so.
    for make in (lambda: Span(Tracer(), None, 1, None, "x", 0), lambda: Scope(None, None, False)):
        try:
            make()
        except TypeError as error:
            assert "takes no arguments" in str(error)
        else:
            raise AssertionError("expected TypeError")


def test_unknown_format_and_carrier_errors():
    tracer = Tracer()
    span = tracer.start_span("x")
    for bad in ("nope", None):
        try:
            tracer.inject(span.context, bad, {})
        except opentracing.UnsupportedFormatException:
            pass
        else:
            raise AssertionError("expected UnsupportedFormatException")
    try:
        tracer.extract(opentracing.Format.BINARY, bytearray(b"\x00garbage"))
    except opentracing.SpanContextCorruptedException:
        pass
    else:
        raise AssertionError("expected SpanContextCorruptedException")


def test_text_map_round_trip_speaks_w3c():
    tracer = Tracer()
    span = tracer.start_span("x").set_baggage_item("user", "alice smith")
    carrier = {}
    tracer.inject(span.context, opentracing.Format.HTTP_HEADERS, carrier)
    # sampled, random trace id (Trace Context Level 2)
    assert carrier["traceparent"] == f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-03"
    assert "user=alice" in carrier["baggage"]
    context = tracer.extract(opentracing.Format.HTTP_HEADERS,
                             {k.upper(): v for k, v in carrier.items()})
    assert isinstance(context, SpanContext)
    assert (context.trace_id, context.span_id) == (span.context.trace_id, span.context.span_id)
    assert context.baggage == {"user": "alice smith"}
    child = tracer.start_span("child", child_of=context)
    assert child.context.trace_id == span.context.trace_id
    assert child.parent_id == span.context.span_id
    assert child.get_baggage_item("user") == "alice smith"


def test_binary_round_trip_with_baggage():
    tracer = Tracer()
    span = tracer.start_span("x").set_baggage_item("k", "v")
    carrier = bytearray()
    tracer.inject(span.context, opentracing.Format.BINARY, carrier)
    context = tracer.extract(opentracing.Format.BINARY, carrier)
    assert (context.trace_id, context.span_id, context.baggage) == (
        span.context.trace_id, span.context.span_id, {"k": "v"})


def test_span_kind_error_tag_and_exception_event():
    exported = []
    tracer = Tracer(export=exported.append)
    try:
        with tracer.start_active_span("op") as scope:
            scope.span.set_tag("span.kind", "client")
            raise KeyError("missing")
    except KeyError:
        pass
    span, = exported[0]
    assert span.kind == 3 and span.status == 2
    name, attrs = span.events[0][1], span.events[0][2]
    assert name == "exception" and attrs["exception.type"] == "KeyError"
    assert "missing" in attrs["exception.message"]
    assert "raise KeyError" in attrs["exception.stacktrace"]
