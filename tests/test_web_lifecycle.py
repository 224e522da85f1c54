"""The request lifecycle (spyglass.web.RequestTrace as a ``with`` block) does what the
functions it writes out do: entering pushes the request's scope layer and activates its
span as ``errors.scope.push_request_scope`` and ``trace.context.activate`` do, leaving undoes it
as ``Scope.close`` and ``errors.scope.pop_scope`` do, in the same context and from another."""
import contextvars

import pytest

from support.calls import agent

from spyglass.errors import scope as scopes
from spyglass.trace import context
from spyglass.web import RequestTrace


def a_request():
    running = agent()
    span = running.tracer.start_server_span("GET")
    return RequestTrace(running, running.tracer, span, "GET")


def state():
    """What is current: the scope layer (its class, parent, request) and the active scope
    (its class and what it holds)."""
    layer, active = scopes.current(), context.get_active_scope()
    return ((type(layer), layer.parent, layer.request),
            active and (type(active), active._manager, active.span, active._finish_on_close))


def enter_written_out(request):
    request.__enter__()
    return lambda: request.__exit__(None, None, None)


def enter_with_the_functions(request):
    parent = scopes.current()
    token = scopes.push_request_scope(request, parent)
    active = context.activate(request.tracer._scope_manager, request.span, False)

    def leave():
        active.close()
        scopes.pop_scope(token, parent)

    return leave


WAYS = [enter_written_out, enter_with_the_functions]


def test_entering_and_leaving_are_the_functions_written_out():
    before = state()
    inside = {}
    for enter in WAYS:
        request = a_request()
        leave = enter(request)
        inside[enter] = state()
        assert inside[enter][0][2] is request and inside[enter][1][2] is request.span
        leave()
        assert state() == before
    (layer, active), (other_layer, other_active) = inside.values()
    assert layer[:2] == other_layer[:2] and active[0] == other_active[0]
    assert active[1] is other_active[1] and active[3] == other_active[3]


@pytest.mark.parametrize("enter", WAYS)
def test_left_from_another_context_both_set_back_what_was_there(enter):
    # An async generator or a task may leave in a copy of the context it entered in: the
    # tokens are then another context's, and what was there before is set back instead.
    before = state()
    leave = enter(a_request())
    assert contextvars.copy_context().run(lambda: (leave(), state())[1]) == before
    leave()  # and here, where the tokens are good
    assert state() == before


def test_the_layer_entered_is_made_as_event_scope_makes_it():
    request = a_request()
    parent = scopes.current()
    leave = enter_written_out(request)
    layer = scopes.current()
    leave()
    assert type(layer) is scopes.EventScope
    assert vars(layer) == vars(scopes.EventScope(parent, request))
