"""Drift tests: on the hot paths (a span, a call, a request, a submit) the code writes out
what a function would do rather than call it (each says so where it stands). Each copy is
held here to do exactly what the function it copies does, so that changing one without the
other fails. (The request lifecycle's copies are in test_web_lifecycle.py.)"""
import contextvars

import pytest

from spyglass import config, metrics
from spyglass.report.reporter import LOGS, Reporter
from spyglass.trace import context
from spyglass.trace.span import INTERNAL, RootSpan, new_span
from spyglass.trace.tracer import Tracer
from spyglass.web import RequestTrace, carried_options
from spyglass.web.wsgi import WSGIRequest

IDS_AND_TIMES = ("trace_id", "span_id", "parent_id", "start_ns", "end_ns", "_token")


def slots(obj):
    """Every slot (and ``__dict__`` entry) of ``obj`` set, but ids and times: what two
    objects made the two ways must agree on."""
    names = {name for cls in type(obj).__mro__ for name in getattr(cls, "__slots__", ())}
    found = {name: getattr(obj, name) for name in names if hasattr(obj, name)}
    found.update(getattr(obj, "__dict__", {}))
    return {name: value for name, value in found.items() if name not in IDS_AND_TIMES}


def in_fresh_context(function):
    return contextvars.copy_context().run(function)


# -- Tracer.start_active_span: a new trace's root (new_root_span) and its scope (activate) --

def test_start_active_span_makes_the_root_and_scope_the_functions_make():
    tracer = Tracer()

    def written_out():
        scope = tracer.start_active_span("checkout")
        return scope, scope.span

    def with_the_functions():
        span = tracer._new_local_root("checkout", None, 0, INTERNAL)
        return context.activate(tracer.scope_manager, span, True), span

    (scope, span), (their_scope, their_span) = map(in_fresh_context, (written_out,
                                                                     with_the_functions))
    assert type(span) is type(their_span) is RootSpan
    assert span.local is span and their_span.local is their_span
    assert {**slots(span), "local": None} == {**slots(their_span), "local": None}
    assert slots(scope).keys() == slots(their_scope).keys()
    assert (scope._manager, scope._finish_on_close) == (their_scope._manager, True)


def test_start_active_span_under_a_parent_is_start_span_then_activate():
    tracer = Tracer()

    def both():
        with tracer.start_active_span("request") as outer:
            child = tracer.start_active_span("child")
            child.close()
            theirs = tracer.start_span("child")
            return slots(child.span), slots(theirs), outer.span

    child, theirs, root = in_fresh_context(both)
    assert child == theirs and child["local"] is root


# -- Tracer.record_call and RootSpan.add_fast_call: RootSpan.add, count_call ------------------

def a_root(tracer):
    return tracer._new_local_root("request", None, 0, INTERNAL)


@pytest.mark.parametrize("calls", [1, 2, 5])  # the first child, the next, over the cap
def test_record_call_keeps_a_span_as_root_add_does(calls):
    tracer = Tracer(max_spans_per_trace=3)
    written_out, with_add = a_root(tracer), a_root(tracer)
    for number in range(calls):
        tracer.record_call(written_out, f"call {number}", INTERNAL, 1, 2, {})
        with_add.add(new_span(tracer, with_add, 1, with_add.span_id, f"call {number}", 1))
    assert [s.name for s in written_out.spans] == [s.name for s in with_add.spans]
    assert (written_out.summary and written_out.summary.dropped) == (
        with_add.summary and with_add.summary.dropped)


@pytest.mark.parametrize("calls", [1, 2, 5])
def test_add_fast_call_counts_and_keeps_as_count_call_and_add_do(calls):
    tracer = Tracer(max_spans_per_trace=3)
    written_out, with_functions = a_root(tracer), a_root(tracer)
    for number in range(calls):
        written_out.add_fast_call(written_out, f"q{number}", INTERNAL, 10, 15, {}, "sql", None, 0)
        with_functions.count_call("sql", 5)
        with_functions.add(new_span(tracer, with_functions, 1, with_functions.span_id,
                                    f"q{number}", 10))
    assert written_out.summary.aggregates == with_functions.summary.aggregates
    assert [s.name for s in written_out.spans] == [s.name for s in with_functions.spans]
    assert written_out.summary.dropped == with_functions.summary.dropped


def test_a_folded_call_is_counted_as_count_call_counts():
    tracer = Tracer()
    written_out, with_count_call = a_root(tracer), a_root(tracer)
    for root in (written_out, with_count_call):
        root.add_fast_call(root, "q", INTERNAL, 10, 15, {}, "sql", "q", 0)
    assert written_out.fold_fast_call(written_out.span_id, "sql", 7, 20, "q")
    with_count_call.count_call("sql", 7)
    assert written_out.summary.aggregates == with_count_call.summary.aggregates == {
        "sql": [2, 12]}
    assert written_out.spans[0].attributes == {"spyglass.count": 2}
    # A call of another category under the same key (another library's) counts as its own.
    assert written_out.fold_fast_call(written_out.span_id, "nosql", 3, 21, "q")
    with_count_call.count_call("nosql", 3)
    assert written_out.summary.aggregates == with_count_call.summary.aggregates


# -- context.Scope.__exit__: close() -------------------------------------------------------

@pytest.mark.parametrize("elsewhere", [False, True], ids=["here", "from a copied context"])
def test_a_scope_left_by_with_is_closed_as_close_does(elsewhere):
    tracer = Tracer()

    def leave(scope, how):
        if elsewhere:
            return contextvars.copy_context().run(lambda: (how(scope), state())[1])
        how(scope)
        return state()

    def state():
        active = context.get_active_scope()
        return active and active.span.name

    def run(how):
        with tracer.start_active_span("outer"):
            inner = tracer.start_active_span("inner")
            return leave(inner, how), inner.span.end_ns != 0

    by_exit = in_fresh_context(lambda: run(lambda scope: scope.__exit__(None, None, None)))
    by_close = in_fresh_context(lambda: run(context.Scope.close))
    assert by_exit == by_close == ("outer", True)


# -- WSGIRequest.__init__: RequestTrace.__init__ ------------------------------------------------

def test_a_wsgi_request_is_made_as_a_request_trace_is():
    agent, tracer, span = object(), Tracer(), object()
    theirs = vars(RequestTrace(agent, tracer, span, "GET"))
    ours = vars(WSGIRequest(agent, tracer, span, "GET", {}, None))
    assert {name: ours[name] for name in theirs} == theirs


# -- web.wsgi.start: Tracer.start_server_span, for a request that starts a trace ---------------

@pytest.mark.parametrize("traceparent", [None, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"])
def test_a_wsgi_requests_span_is_the_one_start_server_span_makes(traceparent):
    from support.calls import agent
    from spyglass.web import wsgi

    running = agent()
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    if traceparent:
        environ["HTTP_TRACEPARENT"] = traceparent
    span = wsgi.start(running, environ, None).span
    theirs = running.tracer.start_server_span("GET", environ if traceparent else None)
    assert type(span) is type(theirs)
    assert {**slots(span), "attributes": {}, "local": None} == {
        **slots(theirs), "local": None}


# -- WSGIRequest.current_options: web.carried_options ------------------------------------------

@pytest.mark.parametrize("environ, options", [
    ({"PATH_INFO": "/"}, None),
    ({"PATH_INFO": "/"}, {"ignore_slow": True}),
    ({"spyglass.view_name": "v", "spyglass.username": "u"}, None),
    ({"spyglass.view_name": "v", "spyglass.username": "u"}, {"view_name": "w"}),
])
def test_a_wsgi_requests_options_are_carried_options(environ, options):
    request = WSGIRequest(object(), Tracer(), object(), "GET", environ, None)
    request.options = options
    assert request.current_options() == carried_options(environ, options)


# -- Reporter.submit_root: _submit ------------------------------------------------------------

@pytest.mark.parametrize("room", [True, False], ids=["queued", "dropped when full"])
def test_submit_root_queues_or_drops_as_submit_does(room):
    reporter = Reporter(config.load(environ={}, max_queue_size=1 if room else 0), dict)
    try:
        reporter._quiet_below = 1 if room else 0  # below: a plain append; at: the cap's test
        reporter.submit_root("root")
        reporter._submit(LOGS, "record")
        assert list(reporter._traces) == (["root"] if room else [])
        assert list(reporter._others) == ([(LOGS, "record")] if room else [])
        assert reporter.counters["dropped"] == (0 if room else 2)
    finally:
        reporter._traces.clear()
        reporter._others.clear()


# -- metrics.record_request and record_db_call: twins, each with its instrument, and
# _record_duration (record_http_client's, record_template's) ---------------------------------

class Registry:
    """What the two read of the metrics registry."""

    def __init__(self, full, forked):
        from spyglass import metrics, process

        self.pending = [None] * metrics.MAX_PENDING if full else []
        self.generation = process.generation + (1 if forked else 0)
        self.dropped = self.forks = 0
        self.full = []

    def fold_when_full(self, event):
        self.full.append(event)

    def after_fork(self):
        from spyglass import process

        self.forks += 1
        self.generation = process.generation


@pytest.mark.parametrize("full", [False, True], ids=["room", "full"])
@pytest.mark.parametrize("forked", [False, True], ids=["same process", "forked"])
def test_record_request_and_record_db_call_record_alike(full, forked, monkeypatch):
    from spyglass import metrics

    for record, instrument, key in ((metrics.record_request, "request", ("/", "GET", 200)),
                                    (metrics.record_db_call, "db_call", ("sqlite", "SELECT")),
                                    (metrics.record_http_client, "http_client",
                                     ("GET", "example.org", 443, 200, None))):
        registry = Registry(full, forked)
        monkeypatch.setattr(metrics, "_registry", registry)
        record(*key, 0.25)
        assert registry.forks == (1 if forked else 0)
        event = (instrument, key, 0.25)
        assert registry.pending[-1] == (None if full else event)
        assert registry.full == ([event] if full else [])


# -- DriverInstrumentation.wrap_statement's synchronous execute: _dbapi.timed ----------------

@pytest.mark.parametrize("fails", [False, True], ids=["returns", "raises"])
def test_a_sync_execute_is_traced_as_timed_traces_it(fails):
    from support.calls import agent
    from spyglass.instrument._dbapi import DriverInstrumentation, timed

    driver = DriverInstrumentation(agent(), "sqlite3", "sqlite", "sqlite")
    recorded = []

    def statement(parent, cursor, args, kwargs, start, end, error, batch):
        recorded.append((parent.operation_name, cursor, args, kwargs, type(error), batch,
                         0 < start <= end))

    driver.statement = statement

    def execute(cursor, text, parameters=()):
        if fails:
            raise ValueError(text)
        return text

    def call(traced):
        with Tracer().start_active_span("request"):
            try:
                return traced("cursor", "SELECT 1", parameters=(1,))
            except ValueError as error:
                return type(error)

    written_out, with_timed = driver.wrap_statement(execute), timed(execute, statement, False,
                                                                     holds=False)
    assert written_out is not with_timed
    results = [in_fresh_context(lambda: call(traced)) for traced in (written_out, with_timed)]
    assert results[0] == results[1] == (ValueError if fails else "SELECT 1")
    assert len(recorded) == 2 and recorded[0] == recorded[1]


# -- DriverInstrumentation.wrap_statement's fast path outside a trace: statement()'s first
# branch ---------------------------------------------------------------------------------------

def a_sqlite_driver(case, cursor):
    """A sqlite3 DriverInstrumentation that has seen ``SELECT 1`` (unless ``case`` is
    "unseen") and finds every call slow (if it is "slow"), and the list its metric fills."""
    from support.calls import agent
    from spyglass.instrument._dbapi import DriverInstrumentation

    driver = DriverInstrumentation(agent(), "sqlite3", "sqlite", "sqlite")
    metric = []
    driver._record_db_call = lambda system, operation, seconds: metric.append(
        (system, operation, type(seconds)))
    if case != "unseen":
        driver._describe_statement("SELECT 1", cursor)
    if case == "slow":
        driver.calls.slow_ns = 0
    return driver, metric


@pytest.mark.parametrize("case", ["fast", "slow", "unseen"])
def test_a_statement_outside_a_trace_ends_as_statement_ends_it(case):
    import sqlite3

    from spyglass.instrument._calls import OUTSIDE

    cursor = sqlite3.connect(":memory:").cursor()

    def run(written_out):
        driver, metric = a_sqlite_driver(case, cursor)
        called = []
        statement = driver.statement
        driver.statement = lambda *args: (called.append(args[0]), statement(*args))
        if written_out:
            traced = driver.wrap_statement(lambda cursor, text: text)
            assert in_fresh_context(lambda: traced(cursor, "SELECT 1")) == "SELECT 1"
        else:
            driver.statement(OUTSIDE, cursor, ("SELECT 1",), {}, 1, 2, None, False)
        return metric, called

    (metric, called), (their_metric, _) = run(True), run(False)
    assert metric == their_metric == [("sqlite", "SELECT", float)]
    # The fast one ends at its metric; the others go on to statement(), under OUTSIDE.
    assert called == ([] if case == "fast" else [OUTSIDE])


# -- DriverInstrumentation.wrap_statement's fast path inside a trace: statement() ------------

@pytest.mark.parametrize("sampled", [True, False], ids=["sampled", "unsampled"])
@pytest.mark.parametrize("case", ["fast", "slow", "unseen"])
def test_a_statement_inside_a_trace_is_recorded_as_statement_records_it(case, sampled):
    import sqlite3

    cursor = sqlite3.connect(":memory:").cursor()

    def run(written_out):
        driver, metric = a_sqlite_driver(case, cursor)
        exported = []
        traced = driver.wrap_statement(lambda cursor, text: text)
        tracer = Tracer(export=exported.extend, sample_rate=1.0 if sampled else 0.0)

        def trace():
            with tracer.start_active_span("request") as scope:
                for text in ("SELECT 1", "SELECT 1", "SELECT 2", "SELECT 1"):
                    if written_out:
                        assert traced(cursor, text) == text
                    else:
                        driver.statement(scope.span, cursor, (text,), {}, 1, 2, None, False)
                return scope.span

        root = in_fresh_context(trace)
        calls = [(span.name, {name: value for name, value in span.attributes.items()
                              if name != "spyglass.stack"}, span.keep) for span in exported
                 if span is not root]
        return metric, calls, {name: value for name, value in root.attributes.items()
                               if not name.endswith("duration_ms")}

    (metric, calls, root), (their_metric, their_calls, their_root) = run(True), run(False)
    assert metric == their_metric and len(metric) == 4
    assert calls == their_calls and root == their_root
    if sampled and case != "slow":  # folded, all four: SELECT 2 is SELECT 1 obfuscated
        assert [call[1].get("spyglass.count") for call in calls] == [4]
