"""paho-mqtt: ``Client.publish`` is a PRODUCER span, and every message the client hands
to the app's callbacks (``on_message``, or those of ``message_callback_add`` that match) is
one CONSUMER span around them.

MQTT 5 carries the trace context in the message's user properties (``traceparent``,
``tracestate``, ``baggage``): they go out in a copy of the app's ``Properties`` (new ones
if it gave none), never over one the app set; a consumer continues it. MQTT 3.1.1 messages
have no headers: their spans are recorded without propagation, a consumer's is a trace of
its own.
"""
import copy

from ._messaging import Messaging
from ._patch import Patch, Supports

SUPPORTS = Supports("paho-mqtt", "1.6")
TIMING = "paho"
PATCHES = (
    Patch("paho.mqtt.client", "Client", publish="traced_publish",
          _handle_on_message="traced_delivery"),
)

SYSTEM = "mqtt"
MQTTv5 = 5


def setup(agent, module):
    return Messaging(agent, TIMING, SYSTEM)


def traced_publish(original, messaging):
    def publish(self, topic, payload=None, qos=0, retain=False, properties=None):
        span = messaging.publishing(topic)
        if span is None:
            return original(self, topic, payload, qos, retain, properties)
        _describe(span.attributes, self, qos, payload)
        if getattr(self, "_protocol", None) == MQTTv5:
            properties = _with_context(messaging, span, properties)
        return messaging.around(span, original, self, topic, payload, qos, retain, properties)

    return publish


def traced_delivery(original, messaging):
    def _handle_on_message(self, message):
        delivery = messaging.delivery(_topic(message), _user_properties(message),
                                      **_message_attributes(message))
        return messaging.deliver(delivery, original, self, message)

    return _handle_on_message


def _with_context(messaging, span, properties):
    """A copy of the app's properties (new ones if none) whose user properties end with the
    trace context, unless the app set it; the app's own if that cannot be made."""
    try:
        if properties is None:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            outgoing = Properties(PacketTypes.PUBLISH)
        else:
            outgoing = copy.copy(properties)  # setting UserProperty adds to a new list
        present = dict(getattr(properties, "UserProperty", None) or ())
        added = messaging.headers_with_context(span, present)
        if added is None:
            return properties
        fresh = [(name, value) for name, value in added.items() if name not in present]
        if fresh:
            outgoing.UserProperty = fresh
        return outgoing
    except Exception:
        messaging.calls.failed()
        return properties


def _describe(attributes, client, qos, payload):
    attributes["messaging.mqtt.qos"] = int(qos) if isinstance(qos, int) else 0
    if isinstance(payload, (bytes, bytearray, str)):
        attributes["messaging.message.body.size"] = len(payload)
    host = getattr(client, "_host", None)
    if host:
        attributes["server.address"] = str(host)
        attributes["server.port"] = int(getattr(client, "_port", 1883))


def _topic(message):
    try:
        return message.topic
    except Exception:  # not UTF-8
        return "?"


def _user_properties(message):
    """The message's MQTT 5 user properties, as (name, value) pairs, or None."""
    return getattr(getattr(message, "properties", None), "UserProperty", None) or None


def _message_attributes(message):
    attributes = {"messaging.mqtt.qos": int(getattr(message, "qos", 0) or 0)}
    payload = getattr(message, "payload", None)
    if isinstance(payload, (bytes, bytearray)):
        attributes["messaging.message.body.size"] = len(payload)
    return attributes
