"""paho-mqtt against the Mosquitto on this machine: a publisher and a subscriber in two
processes under AUTOWRAPT_BOOTSTRAP, through a real OTLP receiver. MQTT 5 carries the trace
context in user properties (one trace across both); MQTT 3.1.1 has no headers (spans on
both sides, no propagation)."""
import os
import uuid

import pytest

from support.messaging import exchange as exchange_messages
from support.services import MQTT, require_tcp

pytest.importorskip("paho.mqtt")

CLIENT = """
import json, os, sys
import paho.mqtt.client as mqtt
host, port = os.environ["MQTT"].rsplit(":", 1)
topic = os.environ["TOPIC"]

def connected(protocol):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=protocol)
    client.connect(host, int(port))
    return client
"""

SUBSCRIBER = CLIENT + """
import threading
received = []
expected = int(os.environ["EXPECTED"])
printing = threading.Lock()  # two clients' loop threads

def on_message(client, userdata, message):
    properties = getattr(message, "properties", None)
    pairs = getattr(properties, "UserProperty", None) or []
    received.append(message.payload)
    with printing:
        print(json.dumps({"payload": message.payload.decode(), "topic": message.topic,
                          "user_properties": pairs}), flush=True)

clients = []
for protocol, suffix in ((mqtt.MQTTv5, "/v5"), (mqtt.MQTTv311, "/v311")):
    client = connected(protocol)
    client.on_message = on_message
    client.subscribe(topic + suffix, qos=1)
    client.loop_start()
    clients.append(client)
import time
deadline = time.monotonic() + 20
time.sleep(0.5)  # the subscriptions are in place
print("ready", flush=True)
while len(received) < expected and time.monotonic() < deadline:
    time.sleep(0.05)
for client in clients:
    client.loop_stop()
    client.disconnect()
"""

PUBLISHER = CLIENT + """
import opentracing
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

v5, v311 = connected(mqtt.MQTTv5), connected(mqtt.MQTTv311)
for client in (v5, v311):
    client.loop_start()
properties = Properties(PacketTypes.PUBLISH)
properties.UserProperty = ("x-app", "1")
with opentracing.tracer.start_active_span("outer"):
    info = v5.publish(topic + "/v5", b"one", qos=1, properties=properties)
    info.wait_for_publish(5)
    print(json.dumps({"returned": type(info).__name__, "rc": int(info.rc)}))
    v5.publish(topic + "/v5", b"two", qos=1).wait_for_publish(5)
    v311.publish(topic + "/v311", b"old", qos=1).wait_for_publish(5)
v5.publish(topic + "/v5", b"alone", qos=1).wait_for_publish(5)
print(json.dumps({"properties": properties.UserProperty}))
for client in (v5, v311):
    client.loop_stop()
    client.disconnect()
"""


@pytest.fixture(scope="module")
def exchange(module_receiver):
    require_tcp(*MQTT)
    topic = f"libs-web/mqtt/{uuid.uuid4().hex[:8]}"
    published, received, spans = exchange_messages(
        module_receiver, SUBSCRIBER, PUBLISHER, 4, EXPECTED=4, TOPIC=topic,
        MQTT=os.environ.get(MQTT[0], MQTT[1]))
    return (published, {line["payload"]: line for line in received}, spans, topic,
            module_receiver)


def test_mqtt5_carries_the_context_in_user_properties(exchange):
    _, received, spans, topic, _ = exchange
    producers = {s["spanId"]: s for s in spans if s["kind"] == 4}
    consumers = [s for s in spans if s["kind"] == 5]
    outer, = [s for s in spans if s["name"] == "outer"]
    one = dict(map(tuple, received["one"]["user_properties"]))
    assert one["x-app"] == "1"
    assert list(one)[0] == "x-app"  # the app's first, the context after
    for payload in ("one", "two"):
        pairs = dict(map(tuple, received[payload]["user_properties"]))
        _, trace_id, span_id, _ = pairs["traceparent"].split("-")
        producer = producers[span_id]
        assert producer["traceId"] == trace_id == outer["traceId"]
        assert producer["parentSpanId"] == outer["spanId"]
        assert producer["name"] == f"publish {topic}/v5"
        consumer, = [c for c in consumers if c.get("parentSpanId") == span_id]
        assert consumer["name"] == f"process {topic}/v5" and consumer["traceId"] == trace_id
    alone = dict(map(tuple, received["alone"]["user_properties"]))["traceparent"].split("-")
    assert alone[1] != outer["traceId"] and not producers[alone[2]].get("parentSpanId")


def test_mqtt311_has_spans_without_propagation(exchange):
    _, received, spans, topic, _ = exchange
    assert received["old"]["user_properties"] == []
    producer, = [s for s in spans if s["kind"] == 4 and s["name"].endswith("/v311")]
    consumer, = [s for s in spans if s["kind"] == 5 and s["name"].endswith("/v311")]
    assert consumer["traceId"] != producer["traceId"] and not consumer.get("parentSpanId")
    assert producer["attrs"]["messaging.system"] == "mqtt"
    assert producer["attrs"]["messaging.operation.type"] == "send"
    assert producer["attrs"]["messaging.destination.name"] == f"{topic}/v311"
    assert producer["attrs"]["messaging.mqtt.qos"] == 1
    assert producer["attrs"]["messaging.message.body.size"] == 3
    assert producer["attrs"]["server.port"] == 1883
    assert consumer["attrs"]["messaging.operation.type"] == "process"


def test_the_apps_objects_and_results_are_unchanged(exchange):
    published, *_ , receiver = exchange
    assert {"returned": "MQTTMessageInfo", "rc": 0} in published
    assert {"properties": [["x-app", "1"]]} in published
    assert receiver.schema_errors == []
