"""Head sampling (parent-based), keeping slow/errored/forced traces when unsampled, and
the per-trace span cap."""
import opentracing

from support.processes import run_python
from spyglass.trace.span import CLIENT
from spyglass.trace.tracer import Tracer


def tracer(rate=1.0, max_spans=1000):
    exported = []
    return Tracer(export=exported.append, sample_rate=rate, max_spans_per_trace=max_spans), exported


def test_rate_zero_exports_nothing_ordinary():
    t, exported = tracer(0.0)
    with t.start_active_span("root"):
        with t.start_active_span("child"):
            pass
    assert exported == []


def test_unsampled_trace_keeps_root_and_failed_call_only():
    t, exported = tracer(0.0)
    with t.start_active_span("root") as root:
        with t.start_active_span("fine"):
            pass
        try:
            with t.start_active_span("broken"):
                raise ValueError("x")
        except ValueError:
            pass
    spans, = exported
    assert [s.name for s in spans] == ["broken", "root"]
    assert root.span.attributes["spyglass.sampled"] is False
    assert spans[0].parent_id == root.span.span_id


def test_unsampled_trace_keeps_a_slow_recorded_call_and_skips_fast_ones():
    t, exported = tracer(0.0)
    with t.start_active_span("request") as scope:
        root = scope.span
        assert t.record_call(root, "SELECT fast", CLIENT, 1, 2, {}) is None
        slow = t.record_call(root, "SELECT slow", CLIENT, 1, 5 * 10**8, {"spyglass.slow": True},
                             keep=True)
    spans, = exported
    assert spans == [slow, root]
    assert slow.kind == CLIENT and slow.parent_id == root.span_id


def test_errored_root_is_exported_even_unsampled():
    t, exported = tracer(0.0)
    try:
        with t.start_active_span("request"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    spans, = exported
    assert spans[0].name == "request" and spans[0].status == 2


def test_sampling_priority_forces_a_trace():
    t, exported = tracer(0.0)
    with t.start_active_span("request") as scope:
        scope.span.set_tag(opentracing.ext.tags.SAMPLING_PRIORITY, 1)
    assert len(exported) == 1


def test_incoming_sampled_flag_wins_over_the_local_rate():
    t, exported = tracer(0.0)
    sampled_parent = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    context = t.extract(opentracing.Format.HTTP_HEADERS, sampled_parent)
    with t.start_active_span("request", child_of=context) as scope:
        pass
    assert len(exported) == 1 and scope.span.parent_id == 0xb7ad6b7169203331
    t, exported = tracer(1.0)
    unsampled_parent = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}
    context = t.extract(opentracing.Format.HTTP_HEADERS, unsampled_parent)
    with t.start_active_span("request", child_of=context):
        pass
    assert exported == []


def test_rate_is_roughly_honoured():
    t, exported = tracer(0.25)
    for _ in range(4000):
        with t.start_active_span("r"):
            pass
    assert 800 < len(exported) < 1200


def test_spans_over_the_cap_are_dropped_and_counted_on_the_root():
    t, exported = tracer(1.0, max_spans=10)
    with t.start_active_span("root") as scope:
        for _ in range(25):
            with t.start_active_span("child"):
                pass
    spans, = exported
    assert len(spans) == 11
    assert scope.span.attributes["spyglass.dropped_spans"] == 15


def test_a_child_that_outlives_its_root_is_still_exported():
    t, exported = tracer()
    root = t.start_span("root")
    late = t.start_span("late", child_of=root)
    root.finish()
    late.finish()
    assert [[s.name for s in chunk] for chunk in exported] == [["root"], ["late"]]
    assert late.parent_id == root.span_id


def test_child_of_a_local_context_joins_the_local_trace():
    t, exported = tracer()
    root = t.start_span("root")
    child = t.start_span("child", child_of=root.context)
    child.finish()
    root.finish()
    assert [[s.name for s in chunk] for chunk in exported] == [["child", "root"]]


def test_unsampled_run_end_to_end_exports_only_what_must_be_seen(receiver):
    run_python("""
        import opentracing
        t = opentracing.tracer
        for i in range(20):
            with t.start_active_span("quiet"):
                pass
        try:
            with t.start_active_span("failing"):
                1 / 0
        except ZeroDivisionError:
            pass
    """, AUTOWRAPT_BOOTSTRAP="runtime", SPYGLASS_ENDPOINT=receiver.url, SPYGLASS_SAMPLE_RATE="0")
    spans = receiver.wait_for(lambda r: r.spans())
    assert [s["name"] for s in spans] == ["failing"]
    failing, = spans
    assert failing["attrs"]["spyglass.sampled"] is False
    assert failing["flags"] & 1 == 0
    event, = failing["events"]
    attrs = {a["key"]: a["value"]["stringValue"] for a in event["attributes"]}
    assert attrs["exception.type"] == "ZeroDivisionError"


def test_a_finished_trace_leaves_no_cyclic_garbage():
    import gc

    t, exported = tracer()
    gc.collect()
    gc.disable()
    try:
        for _ in range(50):
            with t.start_active_span("root") as scope:
                scope.span.context  # made lazily; it refers to the trace too
                for _ in range(3):
                    with t.start_active_span("child"):
                        pass
                t.record_call(scope.span, "call", CLIENT, 1, 2, {})
            assert scope.span.context.trace_id == scope.span.local.trace_id  # once finished too
        exported.clear()
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_exception_events_on_spans_are_scrubbed():
    t, exported = tracer()
    try:
        with t.start_active_span("insert"):
            raise ValueError("duplicate key: Key (email)=(ada@example.com) already exists, "
                             "card 4111 1111 1111 1111")
    except ValueError:
        pass
    span, = exported[0]
    attrs = span.events[0][2]
    for text in (attrs["exception.message"], attrs["exception.stacktrace"], span.status_message):
        assert "ada@example.com" not in text and "4111 1111 1111 1111" not in text
    assert "duplicate key" in attrs["exception.message"]
