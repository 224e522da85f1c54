"""nats-py against the NATS server on this machine: a publisher and a subscriber in two
processes under AUTOWRAPT_BOOTSTRAP, one trace across them through NATS headers, a
request answered by the subscriber, a failing callback; through a real OTLP receiver."""
import os
import uuid

import pytest

from support.messaging import exchange as exchange_messages
from support.services import NATS, require_tcp

pytest.importorskip("nats")

CONNECT = """
import asyncio, json, os
import nats
prefix = os.environ["PREFIX"]
"""

SUBSCRIBER = CONNECT + """
async def main():
    nc = await nats.connect("nats://" + os.environ["NATS"])
    done = asyncio.Event()
    received = []

    async def on_message(msg):
        received.append(msg.data)
        print(json.dumps({"data": msg.data.decode(), "subject": msg.subject,
                          "headers": msg.headers}), flush=True)
        if len(received) == int(os.environ["EXPECTED"]):
            done.set()
        if msg.data == b"fail":
            raise ValueError("the subscriber failed")

    async def answer(msg):
        await msg.respond(b"answer to " + msg.data)

    def sync_callback(msg):
        pass

    try:
        await nc.subscribe(prefix + ".sync", cb=sync_callback)
    except Exception as error:  # nats refuses it, as without the sensor
        print(json.dumps({"raised": type(error).__name__}), flush=True)
    subscription = await nc.subscribe(prefix + ".*", cb=on_message)
    print(json.dumps({"subscription": type(subscription).__name__}), flush=True)
    await nc.subscribe(prefix + "-rpc", queue="workers", cb=answer)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.wait_for(done.wait(), 20)
    await nc.drain()

asyncio.run(main())
"""

PUBLISHER = CONNECT + """
import opentracing

async def main():
    nc = await nats.connect("nats://" + os.environ["NATS"])
    headers = {"x-app": "1"}
    with opentracing.tracer.start_active_span("outer"):
        print(json.dumps({"returned": await nc.publish(prefix + ".one", b"one", headers=headers)}))
        await nc.publish(prefix + ".two", b"two")
        await nc.publish(prefix + ".fail", b"fail")
        answer = await nc.request(prefix + "-rpc", b"question", timeout=5)
        print(json.dumps({"answer": answer.data.decode()}))
    await nc.publish(prefix + ".alone", b"alone")
    print(json.dumps({"headers": headers}))
    await nc.drain()
    try:
        await nc.publish(prefix + ".closed", b"closed")
    except Exception as error:
        print(json.dumps({"raised": type(error).__name__}))

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def exchange(module_receiver):
    require_tcp(*NATS)
    prefix = f"libs-web.{uuid.uuid4().hex[:8]}"
    published, received, spans = exchange_messages(
        module_receiver, SUBSCRIBER, PUBLISHER, 5, EXPECTED=4, PREFIX=prefix,
        NATS=os.environ.get(NATS[0], NATS[1]))
    return published, received, spans, prefix, module_receiver


def test_publish_and_subscribe_in_two_processes_are_one_trace(exchange):
    _, received, spans, prefix, _ = exchange
    producers = {s["spanId"]: s for s in spans if s["kind"] == 4}
    consumers = [s for s in spans if s["kind"] == 5]
    outer, = [s for s in spans if s["name"] == "outer"]
    by_data = {line["data"]: line for line in received if "data" in line}
    assert by_data["one"]["headers"]["x-app"] == "1"
    for data in ("one", "two", "fail"):
        _, trace_id, span_id, _ = by_data[data]["headers"]["traceparent"].split("-")
        producer = producers[span_id]
        assert producer["traceId"] == outer["traceId"] == trace_id
        assert producer["name"] == f"publish {prefix}.{data}"
        consumer, = [c for c in consumers if c.get("parentSpanId") == span_id]
        assert consumer["name"] == f"process {prefix}.*"
        assert consumer["attrs"]["messaging.destination.name"] == f"{prefix}.{data}"
        assert consumer["attrs"]["messaging.destination.template"] == f"{prefix}.*"
        assert consumer["attrs"]["messaging.system"] == "nats"
    alone = by_data["alone"]["headers"]["traceparent"].split("-")
    assert alone[1] != outer["traceId"] and not producers[alone[2]].get("parentSpanId")


def test_a_request_and_its_answer(exchange):
    published, _, spans, prefix, _ = exchange
    assert {"answer": "answer to question"} in published
    outer, = [s for s in spans if s["name"] == "outer"]
    request, = [s for s in spans if s["name"] == f"publish {prefix}-rpc"]
    assert request["parentSpanId"] == outer["spanId"]
    answering, = [s for s in spans if s["name"] == f"process {prefix}-rpc"]
    assert answering["parentSpanId"] == request["spanId"]
    assert answering["attrs"]["messaging.consumer.group.name"] == "workers"
    reply, = [s for s in spans if s["kind"] == 4 and s.get("parentSpanId") == answering["spanId"]]
    assert reply["traceId"] == outer["traceId"]
    # the requester's own subscription for answers makes no CONSUMER span
    assert len([s for s in spans if s["kind"] == 5]) == 5


def test_a_failing_callback_is_reported_and_goes_on_to_nats(exchange):
    *_, spans, prefix, receiver = exchange
    failed, = [s for s in spans if s["kind"] == 5 and s.get("status", {}).get("code") == 2]
    assert failed["attrs"]["messaging.destination.name"] == f"{prefix}.fail"
    errors = receiver.wait_for(lambda r: [x for x in r.log_records()
                                          if x["attrs"].get("event.name") == "spyglass.error"])
    error, = errors
    assert error["spanId"] == failed["spanId"]
    assert error["attrs"]["exception.type"].endswith("ValueError")


def test_the_apps_objects_and_results_are_unchanged(exchange):
    published, received, *_, receiver = exchange
    assert {"returned": None} in published
    assert {"headers": {"x-app": "1"}} in published
    assert {"raised": "ConnectionClosedError"} in published
    assert {"raised": "Error"} in received  # a callback that is not a coroutine
    assert {"subscription": "Subscription"} in received
    assert receiver.schema_errors == []
