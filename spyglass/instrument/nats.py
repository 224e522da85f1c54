"""nats-py: ``Client.publish`` (``request`` and ``Msg.respond`` publish through it) is a
PRODUCER span whose trace context goes out in the message's NATS headers; every message a
subscription's callback gets is a CONSUMER span continuing it, named by the subject
subscribed to (a wildcard one is the ``messaging.destination.template``).

The app's headers dict is never changed: the message goes out with a copy plus
``traceparent`` (and ``tracestate``, ``baggage``), unless the app set one of those. The
client's own subscription for the answers to ``request`` is left alone.
"""
import inspect

from ._messaging import Messaging
from ._patch import Patch, Supports

SUPPORTS = Supports("nats-py", "2.2")
TIMING = "nats"
PATCHES = (
    Patch("nats.aio.client", "Client", publish="traced_publish", subscribe="traced_subscribe"),
)

SYSTEM = "nats"


def setup(agent, module):
    return Messaging(agent, TIMING, SYSTEM)


def traced_publish(original, messaging):
    async def publish(self, subject, payload=b"", reply="", headers=None):
        span = messaging.publishing(subject)
        if span is None:
            return await original(self, subject, payload, reply, headers)
        _describe_publish(span.attributes, self, payload)
        outgoing = messaging.headers_with_context(span, headers)
        return await messaging.around_async(span, original, self, subject, payload, reply,
                                            headers if outgoing is None else outgoing)

    return publish


def traced_subscribe(original, messaging):
    async def subscribe(self, subject, queue="", cb=None, *args, **kwargs):
        # Only the app's coroutines: nats refuses anything else itself, and the client's
        # own callbacks (the answers to its requests) are its business.
        if inspect.iscoroutinefunction(cb) and getattr(cb, "__self__", None) is not self:
            cb = _traced_callback(messaging, subject, queue, cb)
        return await original(self, subject, queue, cb, *args, **kwargs)

    return subscribe


def _traced_callback(messaging, subscribed, queue, callback):
    async def on_message(msg):
        delivery = messaging.delivery(subscribed, getattr(msg, "headers", None),
                                      **_delivery_attributes(msg, subscribed, queue))
        return await messaging.deliver_async(delivery, callback, msg)

    on_message.__wrapped__ = callback
    return on_message


def _describe_publish(attributes, client, payload):
    try:
        attributes["messaging.message.body.size"] = len(payload)
        url = client.connected_url
        if url is not None:
            attributes["server.address"] = str(url.hostname)
            attributes["server.port"] = int(url.port or 4222)
    except Exception:
        pass


def _delivery_attributes(msg, subscribed, queue):
    subject = getattr(msg, "subject", subscribed)
    attributes = {"messaging.destination.name": str(subject)}
    if subject != subscribed:
        attributes["messaging.destination.template"] = str(subscribed)
    if queue:
        attributes["messaging.consumer.group.name"] = str(queue)
    data = getattr(msg, "data", None)
    if isinstance(data, (bytes, bytearray)):
        attributes["messaging.message.body.size"] = len(data)
    return attributes
