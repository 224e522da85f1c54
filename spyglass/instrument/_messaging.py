"""What the message-bus instrumentations share (pika, paho-mqtt, nats-py).

Publishing a message is a PRODUCER span, ``publish <destination>``: a child of the active
span, or a trace of its own where there is none (a script, a worker). It is timed as a call
(``timing.<library>``: a slow or failed publish is kept with its stack), and where the
protocol carries headers its W3C context (``traceparent``, ``tracestate``, ``baggage``) goes
out in the message's headers: in a copy of the app's, never over one the app set itself.

Handing a message to the app's callback is a CONSUMER span, ``process <destination>``,
continuing the context the message carries (else a child of the active span, else a trace
of its own). While the callback runs, the delivery has its own scope layer and active span,
as a request has (``Delivery`` is a ``RequestTrace``): the calls it makes are its children,
its log records and errors carry its ids, ``set_user`` and ``set_request_options`` apply. An
exception the callback raises is reported (once) and goes on to the library as before.

Attributes (OpenTelemetry's messaging conventions): ``messaging.system``,
``messaging.operation.type`` (``send``, ``process``), ``messaging.operation.name``,
``messaging.destination.name``, ``messaging.message.body.size``, the library's own under
``messaging.<system>.*``, and ``server.address``/``server.port`` where known. Never a
message's body or any header of the app's.
"""
import contextvars

from ._calls import REMOTE, CallRecorder
from ._http import inject
from ..errors import capture
from ..trace import propagation
from ..trace.context import get_active_scope, suppressed
from ..trace.span import CONSUMER, PRODUCER
from ..web import RequestTrace

# True while a publish is traced: a library's inner publish (pika's blocking channel on its
# own channel) records nothing more.
_publishing = contextvars.ContextVar("spyglass.messaging.publishing", default=False)


class Messaging:
    """The PRODUCER and CONSUMER spans of one library."""

    def __init__(self, agent, timing_key, system):
        self.agent = agent
        self.system = system
        self.calls = CallRecorder(agent, timing_key, REMOTE, PRODUCER)

    # -- publishing ---------------------------------------------------------------------------

    def publishing(self, destination, operation="publish", name=None, **attributes):
        """The PRODUCER span of a message about to be published, ``<operation>
        <destination>`` unless ``name`` is given, or None (spyglass's own threads, inside a
        publish already traced, or on a failure of ours). ``destination`` None: not known
        yet."""
        if suppressed.get() or _publishing.get():
            return None
        try:
            span = self.agent.tracer.start_child(name or f"{operation} {destination}", PRODUCER)
            found = span.attributes
            found["messaging.system"] = self.system
            found["messaging.operation.type"] = "send"
            found["messaging.operation.name"] = operation
            if destination is not None:
                found["messaging.destination.name"] = str(destination)
            found.update(attributes)
            return span
        except Exception:
            self.calls.failed()
            return None

    def headers_with_context(self, span, headers):
        """A copy of the app's ``headers`` (a mapping, or None) as a dict, with the trace
        context added where the app did not set it."""
        try:
            outgoing = dict(headers) if headers else {}
            inject(outgoing, span)
            return outgoing
        except Exception:
            self.calls.failed()
            return None

    def around(self, span, call, *args, **kwargs):
        """``call(*args, **kwargs)``, the library's publish, inside ``span`` (which ends
        with it); None: untraced."""
        if span is None:
            return call(*args, **kwargs)
        token = _publishing.set(True)
        try:
            result = call(*args, **kwargs)
        except BaseException as error:
            self.published(span, token, error)
            raise
        self.published(span, token)
        return result

    async def around_async(self, span, call, *args, **kwargs):
        if span is None:
            return await call(*args, **kwargs)
        token = _publishing.set(True)
        try:
            result = await call(*args, **kwargs)
        except BaseException as error:
            self.published(span, token, error)
            raise
        self.published(span, token)
        return result

    def published(self, span, token, error=None):
        try:
            _publishing.reset(token)
        except (ValueError, RuntimeError):
            pass
        try:
            if isinstance(error, Exception):
                span.attributes["error.type"] = type(error).__qualname__
            else:
                error = None
            self.calls.finish(span, error)
        except Exception:
            self.calls.failed()

    # -- delivering -----------------------------------------------------------------------

    def delivery(self, destination, carrier=None, name=None, kind=None, **attributes):
        """A ``Delivery`` (or ``kind``, a subclass) for a message about to be handed to the
        app's callback, its span (``process <destination>`` unless ``name`` is given)
        started, continuing the context in ``carrier`` (the message's headers, a mapping,
        or None); None on spyglass's own threads or on a failure of ours."""
        if suppressed.get():
            return None
        try:
            agent = self.agent
            tracer = agent.tracer
            name = name or f"process {destination}"
            found = propagation.extract(carrier) if carrier else None
            active = get_active_scope()
            if found is None and active is not None:
                span = tracer.start_child(name, CONSUMER, active.span)
            else:
                span = tracer.start_server_span(name, carrier if found is not None else None,
                                                CONSUMER)
            values = span.attributes
            values["messaging.system"] = self.system
            values["messaging.operation.type"] = "process"
            values["messaging.operation.name"] = "process"
            if destination is not None:
                values["messaging.destination.name"] = str(destination)
            values.update(attributes)
            return (kind or Delivery)(agent, tracer, span, self.system, destination)
        except Exception:
            self.calls.failed()
            return None

    @staticmethod
    def deliver(delivery, callback, *args, **kwargs):
        """``callback(*args, **kwargs)``, the app's, inside ``delivery`` (None: untraced)."""
        if delivery is None:
            return callback(*args, **kwargs)
        with delivery:
            result = callback(*args, **kwargs)
        delivery.finish()
        return result

    @staticmethod
    async def deliver_async(delivery, callback, *args, **kwargs):
        if delivery is None:
            return await callback(*args, **kwargs)
        with delivery:
            result = await callback(*args, **kwargs)
        delivery.finish()
        return result


class Delivery(RequestTrace):
    """One message handed to the app's callback: its CONSUMER span and, while the callback
    runs, its scope layer and active span. Not an HTTP request: no route, no status, no
    request metric; slow by ``slow_request_time``."""

    http = False

    def __init__(self, agent, tracer, span, system, destination):
        RequestTrace.__init__(self, agent, tracer, span, "process")
        self.system = system
        self.destination = destination

    def fail(self, exc):
        """The callback raised ``exc`` (it goes on to the library after this)."""
        if isinstance(exc, Exception):
            capture.capture_unhandled(exc, self)
            capture.note_propagated(exc)
        self.finish()

    def describe(self, scrubber):
        return {"messaging.system": self.system, "destination": str(self.destination)}
