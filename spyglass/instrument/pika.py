"""pika (RabbitMQ): ``basic_publish`` is a PRODUCER span whose trace context goes out in
the message's headers; every message handed to a ``basic_consume`` callback is a CONSUMER
span continuing it. The blocking adapter and the asynchronous ones (select, asyncio,
tornado, twisted) alike: the blocking channel's publish is timed with its publisher
confirms (its inner channel's records nothing more), and its consumers' callbacks run
traced where it dispatches them (not its own callback on the inner channel).

The app's ``BasicProperties`` are never changed: the message goes out with a copy of them
whose ``headers`` are a copy of the app's plus ``traceparent`` (and ``tracestate``,
``baggage``), unless the app set one of those itself.
"""
import copy

from ._messaging import Messaging
from ._patch import Patch, Supports

SUPPORTS = Supports("pika", "1.0")
TIMING = "pika"
PATCHES = (
    Patch("pika.channel", "Channel", basic_publish="traced_publish",
          basic_consume="traced_consume"),
    Patch("pika.adapters.blocking_connection", "BlockingChannel",
          basic_publish="traced_publish", basic_consume="traced_consume"),
)

SYSTEM = "rabbitmq"
# The blocking channel registers this with its own channel; the app's callback runs later.
_BLOCKING_DISPATCH = "BlockingChannel._on_consumer_message_delivery"


def setup(agent, module):
    return Messaging(agent, TIMING, SYSTEM)


def traced_publish(original, messaging):
    def basic_publish(self, exchange, routing_key, body, properties=None, mandatory=False):
        span = messaging.publishing(exchange or routing_key)  # the default exchange: the queue
        if span is None:
            return original(self, exchange, routing_key, body, properties, mandatory)
        _describe_publish(span.attributes, self, routing_key, body, properties)
        outgoing = _with_context(messaging, span, properties)
        return messaging.around(span, original, self, exchange, routing_key, body, outgoing,
                                mandatory)

    return basic_publish


def traced_consume(original, messaging):
    def basic_consume(self, queue, on_message_callback, *args, **kwargs):
        if callable(on_message_callback) and getattr(
                getattr(on_message_callback, "__func__", None), "__qualname__", "") \
                != _BLOCKING_DISPATCH:
            on_message_callback = _traced_callback(messaging, queue, on_message_callback)
        return original(self, queue, on_message_callback, *args, **kwargs)

    return basic_consume


def _traced_callback(messaging, queue, callback):
    def on_message(channel, method, properties, body):
        delivery = messaging.delivery(queue or getattr(method, "routing_key", ""),
                                      getattr(properties, "headers", None),
                                      **_delivery_attributes(method, properties, body))
        return messaging.deliver(delivery, callback, channel, method, properties, body)

    on_message.__wrapped__ = callback
    return on_message


def _with_context(messaging, span, properties):
    """A copy of the app's properties (new ones if none) whose headers carry the context."""
    try:
        if properties is None:
            from pika.spec import BasicProperties

            outgoing = BasicProperties()
        else:
            outgoing = copy.copy(properties)
        headers = messaging.headers_with_context(span, getattr(properties, "headers", None))
        if headers is None:
            return properties
        outgoing.headers = headers
        return outgoing
    except Exception:
        messaging.calls.failed()
        return properties


def _describe_publish(attributes, channel, routing_key, body, properties):
    attributes.update(_message_attributes(routing_key, body, properties))
    try:
        connection = channel.connection
        params = getattr(connection, "_impl", connection).params  # blocking: its own inside
        attributes["server.address"] = str(params.host)
        attributes["server.port"] = int(params.port)
    except Exception:
        pass


def _delivery_attributes(method, properties, body):
    attributes = _message_attributes(getattr(method, "routing_key", ""), body, properties)
    delivery_tag = getattr(method, "delivery_tag", None)
    if delivery_tag is not None:
        attributes["messaging.rabbitmq.message.delivery_tag"] = int(delivery_tag)
    return attributes


def _message_attributes(routing_key, body, properties):
    attributes = {"messaging.rabbitmq.destination.routing_key": str(routing_key)}
    try:
        attributes["messaging.message.body.size"] = len(body)
    except TypeError:
        pass
    message_id = getattr(properties, "message_id", None)
    if message_id:
        attributes["messaging.message.id"] = str(message_id)
    return attributes
