"""pika against the RabbitMQ on this machine: a publisher and a consumer in two processes
under AUTOWRAPT_BOOTSTRAP, one trace across them, through a real OTLP receiver; the
asynchronous adapter in one process; a Flask view publishing to another process's consumer."""
import json
import os
import uuid

import pytest

from support.messaging import bootstrap_env, exchange
from support.processes import Script
from support.services import RABBITMQ, require_tcp
from support.web import APPS

pika = pytest.importorskip("pika")

CONNECT = """
import json, os, sys
import pika
host, port = os.environ["RABBITMQ"].rsplit(":", 1)
parameters = pika.ConnectionParameters(host, int(port), credentials=pika.PlainCredentials(
    os.environ.get("RABBITMQ_USER", "guest"), os.environ.get("RABBITMQ_PASSWORD", "guest")))
queue = os.environ["QUEUE"]
"""

CONSUMER = CONNECT + """
connection = pika.BlockingConnection(parameters)
channel = connection.channel()
expected = int(os.environ["EXPECTED"])
received = []

def on_message(channel, method, properties, body):
    received.append(body)
    print(json.dumps({"body": body.decode(), "headers": properties.headers,
                      "message_id": properties.message_id}), flush=True)
    channel.basic_ack(method.delivery_tag)
    if len(received) == expected:
        channel.stop_consuming()
    if body == b"fail":
        raise ValueError("the consumer failed")

tag = channel.basic_consume(queue, on_message)
print(json.dumps({"tag": tag.startswith("ctag")}))
print("ready", flush=True)
try:
    channel.start_consuming()
except ValueError as error:
    print(json.dumps({"raised": type(error).__name__}), flush=True)
connection.close()
"""

PUBLISHER = CONNECT + """
import opentracing
connection = pika.BlockingConnection(parameters)
channel = connection.channel()
properties = pika.BasicProperties(headers={"x-app": "1"}, message_id="m-1")
with opentracing.tracer.start_active_span("outer"):
    print(json.dumps({"returned": channel.basic_publish("", queue, b"one", properties)}))
    channel.basic_publish(exchange="", routing_key=queue, body=b"two")
    channel.basic_publish("", queue, b"own", pika.BasicProperties(
        headers={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}))
channel.basic_publish("", queue, b"alone")
with opentracing.tracer.start_active_span("outer"):
    channel.basic_publish("", queue, b"fail")  # the last: the consumer's loop ends with it
print(json.dumps({"properties": [properties.headers, properties.message_id]}))
connection.close()
try:
    channel.basic_publish("", queue, b"closed")
except Exception as error:
    print(json.dumps({"raised": type(error).__name__}))
"""


def declared_queue():
    host, port = require_tcp(*RABBITMQ)
    name = f"libs-web-pika-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.ConnectionParameters(host, port))
    channel = connection.channel()
    channel.queue_declare(name)
    yield name
    channel.queue_delete(name)
    connection.close()


@pytest.fixture
def queue():
    yield from declared_queue()


def env(receiver, queue, **extra):
    return bootstrap_env(receiver, RABBITMQ=os.environ.get(RABBITMQ[0], RABBITMQ[1]),
                         QUEUE=queue, **extra)


def by_kind(spans, kind):
    return [span for span in spans if span["kind"] == kind]


@pytest.fixture(scope="module")
def module_queue():
    yield from declared_queue()


@pytest.fixture(scope="module")
def two_processes(module_receiver, module_queue):
    return exchange(module_receiver, CONSUMER, PUBLISHER, 5, EXPECTED=5, QUEUE=module_queue,
                    RABBITMQ=os.environ.get(RABBITMQ[0], RABBITMQ[1]))


def test_publish_and_consume_in_two_processes_are_one_trace(two_processes, module_queue):
    queue = module_queue
    published, consumed, spans = two_processes
    producers, consumers = by_kind(spans, 4), by_kind(spans, 5)
    assert len(producers) == 6 and len(consumers) == 5
    failed, = [p for p in producers if p.get("status", {}).get("code") == 2]  # on a closed channel
    assert failed["attrs"]["error.type"] == "ChannelWrongStateError"
    outers = {s["spanId"]: s for s in spans if s["name"] == "outer"}
    assert {p["name"] for p in producers} == {f"publish {queue}"}
    assert {c["name"] for c in consumers} == {f"process {queue}"}
    for consumer in consumers:  # each continues its message's producer (or the app's own)
        assert [p for p in producers if p["spanId"] == consumer["parentSpanId"]] or \
            consumer["parentSpanId"] == "2" * 16
    by_body = {}
    for line in consumed:
        if "body" in line:
            by_body[line["body"]] = line
    assert by_body["one"]["headers"]["x-app"] == "1"
    assert by_body["one"]["message_id"] == "m-1"
    for body in ("one", "two", "fail"):
        traceparent = by_body[body]["headers"]["traceparent"]
        _, trace_id, span_id, _ = traceparent.split("-")
        producer, = [p for p in producers if p["spanId"] == span_id]
        assert producer["traceId"] == trace_id == outers[producer["parentSpanId"]]["traceId"]
        consumer, = [c for c in consumers if c.get("parentSpanId") == span_id]
        assert consumer["traceId"] == trace_id
    # the app's own traceparent goes out as the app set it
    assert by_body["own"]["headers"]["traceparent"] == "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    # outside any span: a PRODUCER span of its own, and its consumer in the same trace
    alone = by_body["alone"]["headers"]["traceparent"].split("-")
    assert alone[1] not in {outer["traceId"] for outer in outers.values()}
    assert [p for p in producers if p["spanId"] == alone[2] and not p.get("parentSpanId")]


def test_what_the_spans_say(two_processes, module_queue):
    queue = module_queue
    _, _, spans = two_processes
    producer = [p for p in by_kind(spans, 4) if p["attrs"].get("messaging.message.id")][0]
    attrs = producer["attrs"]
    assert attrs["messaging.system"] == "rabbitmq"
    assert attrs["messaging.operation.type"] == "send"
    assert attrs["messaging.operation.name"] == "publish"
    assert attrs["messaging.destination.name"] == queue
    assert attrs["messaging.rabbitmq.destination.routing_key"] == queue
    assert attrs["messaging.message.body.size"] == 3
    assert attrs["messaging.message.id"] == "m-1"
    assert attrs["server.address"] == "127.0.0.1" and attrs["server.port"] == 5672
    assert attrs["spyglass.category"] == "remote"
    consumer = [c for c in by_kind(spans, 5) if c["attrs"].get("messaging.message.id")][0]
    assert consumer["attrs"]["messaging.operation.type"] == "process"
    assert consumer["attrs"]["messaging.rabbitmq.message.delivery_tag"] >= 1
    assert "http.route" not in consumer["attrs"]


def test_a_failing_callback_is_reported_and_raises_as_before(two_processes, module_receiver):
    receiver = module_receiver
    published, consumed, spans = two_processes
    assert {"raised": "ValueError"} in consumed
    failed, = [c for c in by_kind(spans, 5) if c.get("status", {}).get("code") == 2]
    errors = receiver.wait_for(lambda r: [x for x in r.log_records()
                                          if x["attrs"].get("event.name") == "spyglass.error"])
    error, = errors
    assert error["spanId"] == failed["spanId"]
    assert receiver.schema_errors == []


def test_the_apps_objects_and_results_are_unchanged(two_processes):
    published, consumed, _ = two_processes
    assert {"returned": None} in published
    assert {"properties": [{"x-app": "1"}, "m-1"]} in published
    assert {"raised": "ChannelWrongStateError"} in published
    assert {"tag": True} in consumed


ASYNC = CONNECT + """
import opentracing
from pika.adapters.asyncio_connection import AsyncioConnection

done = []

def on_open(connection):
    connection.channel(on_open_callback=on_channel)

def on_channel(channel):
    def on_message(channel, method, properties, body):
        print(json.dumps({"body": body.decode(), "traceparent": properties.headers["traceparent"]}))
        channel.basic_ack(method.delivery_tag)
        channel.connection.close()

    channel.basic_consume(queue, on_message)
    with opentracing.tracer.start_active_span("outer"):
        channel.basic_publish("", queue, b"async")

connection = AsyncioConnection(parameters, on_open_callback=on_open,
                               on_close_callback=lambda *args: connection.ioloop.stop())
connection.ioloop.run_forever()
"""


def test_the_asynchronous_adapter(receiver, queue):
    with Script(ASYNC, **env(receiver, queue)) as script:
        lines, _ = script.finish()
    received = json.loads(lines[-1])
    spans = receiver.wait_for(lambda r: len(r.spans()) >= 3 and r.spans())
    producer, = by_kind(spans, 4)
    consumer, = by_kind(spans, 5)
    assert received["traceparent"].split("-")[2] == producer["spanId"]
    assert consumer["parentSpanId"] == producer["spanId"]
    assert consumer["traceId"] == producer["traceId"]


FLASK_PUBLISHER = CONNECT + """
from flask import Flask

app = Flask(__name__)

@app.route("/orders/<int:order>", methods=["POST"])
def order(order):
    connection = pika.BlockingConnection(parameters)
    connection.channel().basic_publish("", queue, str(order).encode())
    connection.close()
    return {"queued": order}

print(app.test_client().post("/orders/7").get_json())
"""


def test_a_flask_view_publishing_and_a_consumer_elsewhere_are_one_trace(receiver, queue):
    with Script(CONSUMER, EXPECTED=1, **env(receiver, queue)) as consumer:
        consumer.wait_for_line("ready")
        with Script(FLASK_PUBLISHER, PYTHONPATH=APPS, **env(receiver, queue)) as publisher:
            assert publisher.finish()[0] == ["{'queued': 7}"]
        consumer.finish()
    spans = receiver.wait_for(lambda r: len(r.spans()) >= 3 and r.spans())
    request, = [s for s in spans if s["name"] == "POST /orders/<int:order>"]
    producer, = by_kind(spans, 4)
    consumer, = by_kind(spans, 5)
    assert producer["parentSpanId"] == request["spanId"]
    assert consumer["parentSpanId"] == producer["spanId"]
    assert request["traceId"] == producer["traceId"] == consumer["traceId"]
