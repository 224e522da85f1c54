"""Celery end to end: a Flask app (service ``shop``) enqueues tasks on the real RabbitMQ and
Redis brokers, a real ``celery -A taskproj worker`` (service ``taskproj``) runs them in its
prefork children, and the real OTLP receiver shows one trace across the two services.

One worker per broker serves the module's first tests (a worker takes seconds to start);
the tests of pools, shutdown and beat start their own.
"""
import json
import os
import signal

import psutil
import pytest

from support.otlp_receiver import OTLPReceiver
from support.tasks import (CONSUMER, PRODUCER, Worker, broker_url, children, command,
                          error_events, message_spans, unique_name, wait_for_runs)
from support.web import drive

pytest.importorskip("celery")
pytest.importorskip("flask")

SCENARIOS = ("add", "fail", "flaky", "reject", "expected", "chain", "group", "send_task")
ENQUEUE = """
import json
from taskproj.web import web

client = web.test_client()
for what in {paths!r}:
    print(json.dumps({{what: client.get("/enqueue/" + what).json}}))
"""


def celery_worker(receiver, broker, queue, *args, **env):
    """A worker of its own name (its control queue is exclusive to it), ready."""
    worker = Worker([command("celery"), "-A", "taskproj", "worker", "--loglevel", "INFO",
                     "--without-mingle", "--without-gossip", "-c", "1", "-n", f"{queue}@%h",
                     *args], receiver, TASKPROJ_BROKER=broker, TASKPROJ_QUEUE=queue, **env)
    try:
        worker.wait_for_output(r"@\S+ ready")
    except BaseException:
        worker.close()
        raise
    return worker


def enqueue(receiver, broker, queue, paths, **env):
    """Run the Flask app's views that enqueue ``paths``; {path: what the view answered}."""
    run = drive(ENQUEUE.format(paths=tuple(paths)), receiver=receiver, TASKPROJ_BROKER=broker,
                TASKPROJ_QUEUE=queue, SPYGLASS_SERVICE_NAME="shop", **env)
    found = {}
    for output in run.outputs:
        found.update(output)
    return found


@pytest.fixture(scope="module", params=[("amqp", "2"), ("redis", "2"), ("amqp", "1")],
                ids=["amqp", "redis", "amqp-protocol-1"])
def served(request):
    """(receiver, {scenario: task id}, {scenario: the view's answer}, the worker):
    every scenario enqueued once by the Flask app and run by one prefork worker on this
    broker, in this version of Celery's message protocol (1 gives the task its message's
    headers in ``request.headers``, 2 as attributes of the request)."""
    kind, protocol = request.param
    broker = broker_url(kind)
    queue = unique_name(kind)
    receiver = OTLPReceiver().start()
    worker = celery_worker(receiver, broker, queue, TASKPROJ_PROTOCOL=protocol)
    try:
        answers = enqueue(receiver, broker, queue, SCENARIOS, TASKPROJ_PROTOCOL=protocol)
        ids = {what: answer["id"] for what, answer in answers.items()}
        yield receiver, ids, answers, worker
    finally:
        worker.stop(signal.SIGTERM)
        worker.close()
        receiver.stop()


def producer_of(receiver, task_id, service="shop"):
    spans = [span for span in message_spans(receiver, task_id, PRODUCER)
             if span["resource"]["service.name"] == service]
    assert spans, f"no producer span for {task_id}"
    return spans[0]


def test_a_view_that_enqueues_and_the_prefork_run_are_one_trace(served):
    receiver, ids, _, worker = served
    run, = wait_for_runs(receiver, ids["add"], worker=worker)
    publish = producer_of(receiver, ids["add"])
    request, = [span for span in receiver.spans() if span["spanId"] == publish["parentSpanId"]]
    assert request["name"] == "GET /enqueue/<what>" and request["kind"] == 2
    assert publish["name"] == "publish taskproj.add" and publish["traceId"] == request["traceId"]
    assert run["traceId"] == request["traceId"] and run["parentSpanId"] == publish["spanId"]
    assert run["name"] == "taskproj.add"
    assert run["resource"]["service.name"] == "taskproj"
    assert publish["resource"]["service.name"] == "shop"
    assert run["resource"]["process.pid"] != worker.process.pid  # a prefork child ran it
    queue = publish["attrs"]["messaging.destination.name"]
    assert queue.startswith("spyglass-tasks-")
    for span, operation in ((publish, "send"), (run, "process")):
        attrs = span["attrs"]
        assert attrs["messaging.system"] == "celery"
        assert attrs["messaging.operation.type"] == operation
        assert attrs["messaging.message.id"] == ids["add"]
        assert attrs["messaging.destination.name"] == queue
        assert attrs["messaging.celery.task.name"] == "taskproj.add"
    assert publish["attrs"]["spyglass.category"] == "remote"
    assert run["attrs"]["messaging.celery.state"] == "SUCCESS"
    assert "SELECT ?" in [call["attrs"].get("db.query.text") for call in children(receiver, run)]
    assert receiver.schema_errors == []


def test_a_failed_task_is_an_error_event_sent_once(served):
    receiver, ids, _, worker = served
    run, = wait_for_runs(receiver, ids["fail"], worker=worker)
    assert run["status"]["code"] == 2
    assert run["attrs"]["messaging.celery.state"] == "FAILURE"
    exception, = [event for event in run["events"] if event["name"] == "exception"]
    assert receiver.wait_for(lambda r: error_events(r, run))
    event, = error_events(receiver, run)  # Celery's own log of it adds none
    assert event["attrs"]["exception.type"] == "ValueError"
    assert event["traceId"] == run["traceId"]
    body = json.loads(event["body"]["stringValue"])
    assert body["handled"] is False
    assert body["request"] == {"messaging.system": "celery", "task": "taskproj.fail",
                               "id": ids["fail"], "destination": run["attrs"][
                                   "messaging.destination.name"]}
    assert any(frame["function"] == "fail" for frame in body["frames"])


def test_a_retried_task_is_a_span_per_attempt_the_next_linked_to_the_one_before(served):
    receiver, ids, _, worker = served
    first, second = wait_for_runs(receiver, ids["flaky"], count=2, worker=worker)
    assert first["attrs"]["messaging.celery.state"] == "RETRY"
    assert "first attempt fails" in first["attrs"]["messaging.celery.retry.reason"]
    assert first.get("status", {}).get("code", 0) != 2  # a retry is not a failure
    assert second["attrs"]["messaging.celery.state"] == "SUCCESS"
    assert second["attrs"]["messaging.celery.retries"] == 1
    # The worker publishes the retry inside the first attempt; the second continues it.
    retry, = [span for span in children(receiver, first) if span["kind"] == PRODUCER]
    assert retry["name"] == "publish taskproj.flaky"
    assert retry["attrs"]["messaging.celery.retries"] == 1
    assert second["parentSpanId"] == retry["spanId"] and second["traceId"] == first["traceId"]
    assert second["links"] == [{"traceId": first["traceId"], "spanId": first["spanId"]}]
    assert error_events(receiver, first) == [] and error_events(receiver, second) == []


def test_rejected_and_expected_outcomes_are_states_not_errors(served):
    receiver, ids, _, worker = served
    rejected, = wait_for_runs(receiver, ids["reject"], worker=worker)
    assert rejected["attrs"]["messaging.celery.state"] == "REJECTED"
    assert rejected.get("status", {}).get("code", 0) != 2
    # KeyError is in the task's Task.throws.
    expected, = wait_for_runs(receiver, ids["expected"], worker=worker)
    assert expected["attrs"]["messaging.celery.state"] == "FAILURE"
    assert expected.get("status", {}).get("code", 0) != 2
    assert [event["name"] for event in expected["events"]] == ["exception"]
    assert error_events(receiver, expected) == []


def test_a_chain_a_group_and_send_task_by_name_continue_the_request_trace(served):
    receiver, ids, answers, worker = served
    first, = wait_for_runs(receiver, answers["chain"]["id"], worker=worker)
    assert first["parentSpanId"] == producer_of(receiver, answers["chain"]["id"])["spanId"]
    # The next step is published by the worker, inside the first step's run.
    second, = wait_for_runs(receiver, answers["chain"]["next"], worker=worker)
    next_step = producer_of(receiver, answers["chain"]["next"], service="taskproj")
    assert next_step["parentSpanId"] == first["spanId"]
    assert second["parentSpanId"] == next_step["spanId"]
    assert second["traceId"] == first["traceId"]
    group = [producer_of(receiver, task_id) for task_id in answers["group"]["each"]]
    assert len({span["parentSpanId"] for span in group}) == 1  # the one request
    for publish in group:
        run, = wait_for_runs(receiver, publish["attrs"]["messaging.message.id"], worker=worker)
        assert run["parentSpanId"] == publish["spanId"]
    by_name, = wait_for_runs(receiver, ids["send_task"], worker=worker)
    assert by_name["parentSpanId"] == producer_of(receiver, ids["send_task"])["spanId"]


# Nothing is sent on the way (a minute between exports, no metrics): only what a process
# drains as it ends arrives.
QUIET = {"SPYGLASS_FLUSH_INTERVAL": "60", "SPYGLASS_METRICS_INTERVAL": "0"}
PUBLISH = """
import json
from taskproj import add, sleep

print(json.dumps({"add": add.delay(1, 2).id, "sleep": sleep.delay(1.5).id}))
"""


@pytest.mark.parametrize("pool", [("prefork", "--max-tasks-per-child", "1"), ("threads",),
                                  ("solo",)], ids=lambda pool: pool[0])
def test_every_pool_delivers_also_when_the_worker_is_stopped_with_term(receiver, pool):
    broker = broker_url("amqp")
    queue = unique_name(pool[0])
    worker = celery_worker(receiver, broker, queue, "--pool", *pool, **QUIET)
    try:
        # Published by a plain script, outside any trace, every publish slow.
        ids, = drive(PUBLISH, bootstrap="runtime", receiver=receiver, TASKPROJ_BROKER=broker,
                     TASKPROJ_QUEUE=queue, SPYGLASS_SERVICE_NAME="script",
                     SPYGLASS_TIMING_CELERY="0").outputs
        worker.wait_for_output(r"sleeping 1.5s")  # running: a warm shutdown lets it end
        assert worker.stop(signal.SIGTERM) == 0
    finally:
        worker.close()
    (quick,), (slow,) = (wait_for_runs(receiver, ids[what]) for what in ("add", "sleep"))
    assert slow["attrs"]["messaging.celery.state"] == "SUCCESS"
    for run, what in ((quick, "add"), (slow, "sleep")):
        publish, = message_spans(receiver, ids[what], PRODUCER)
        assert "parentSpanId" not in publish  # a trace of its own: nothing traced around it
        assert run["parentSpanId"] == publish["spanId"] and run["traceId"] == publish["traceId"]
        assert publish["attrs"]["spyglass.slow"] is True
        assert "_driver.py" in publish["attrs"]["spyglass.stack"]
    pids = {run["resource"]["process.pid"] for run in (quick, slow)}
    if pool[0] == "prefork":  # a child per task, each drained before billiard ends it
        assert len(pids) == 2 and worker.process.pid not in pids
    else:
        assert pids == {worker.process.pid}


def test_beat_publishes_each_schedule_as_a_trace_the_worker_continues(receiver, tmp_path):
    broker = broker_url("amqp")
    queue = unique_name("beat")
    worker = celery_worker(receiver, broker, queue)
    beat = Worker([command("celery"), "-A", "taskproj", "beat", "--loglevel", "INFO",
                   "--schedule", str(tmp_path / "schedule")], receiver,
                  TASKPROJ_BROKER=broker, TASKPROJ_QUEUE=queue)
    try:
        beat.wait_for_output(r"(?s)Sending due task tick.*Sending due task tick")
        assert beat.stop(signal.SIGTERM) == 0
        publishes = receiver.wait_for(lambda r: [
            span for span in r.spans() if span["kind"] == PRODUCER
            and span["resource"]["process.pid"] == beat.process.pid])
        assert len(publishes) >= 2
        for publish in publishes:
            assert publish["name"] == "publish taskproj.add" and "parentSpanId" not in publish
            assert publish["resource"]["service.name"] == "taskproj"
            run, = wait_for_runs(receiver, publish["attrs"]["messaging.message.id"],
                                 worker=worker)
            assert run["parentSpanId"] == publish["spanId"]
    finally:
        beat.close()
        worker.stop(signal.SIGTERM)
        worker.close()


def test_an_eager_task_runs_inside_the_request_and_celery_can_be_switched_off(receiver):
    run = drive(ENQUEUE.format(paths=("add",)), receiver=receiver, TASKPROJ_EAGER="1",
                SPYGLASS_SERVICE_NAME="shop")
    task, = [span for span in run.spans() if span["kind"] == CONSUMER]
    request = run.span("GET /enqueue/<what>")
    assert task["parentSpanId"] == request["spanId"] and task["name"] == "taskproj.add"
    assert [span for span in run.spans() if span["kind"] == PRODUCER] == []  # nothing sent
    assert "SELECT ?" in [call["attrs"].get("db.query.text") for call in children(receiver, task)]
    switched_off = OTLPReceiver().start()
    try:
        run = drive(ENQUEUE.format(paths=("add",)), receiver=switched_off, TASKPROJ_EAGER="1",
                    SPYGLASS_TIMING_CELERY="false")
        assert [span["kind"] for span in run.spans() if span["kind"] in (PRODUCER, CONSUMER)] == []
        request = run.span("GET /enqueue/<what>")
        assert "SELECT ?" in [call["attrs"].get("db.query.text")
                              for call in children(switched_off, request)]
    finally:
        switched_off.stop()


def test_a_prefork_child_killed_by_sigterm_delivers_what_it_traced(receiver):
    broker = broker_url("amqp")
    queue = unique_name("killed")
    worker = celery_worker(receiver, broker, queue, **QUIET)
    try:
        ids, = drive(PUBLISH.replace("sleep.delay(1.5)", "sleep.delay(0)"), bootstrap="runtime",
                     receiver=receiver, TASKPROJ_BROKER=broker, TASKPROJ_QUEUE=queue).outputs
        worker.wait_for_output(r"Task taskproj\.sleep\[%s\] succeeded" % ids["sleep"])
        child, = psutil.Process(worker.process.pid).children()
        os.kill(child.pid, signal.SIGTERM)  # as a revoke(terminate=True) does
        runs = [wait_for_runs(receiver, ids[what], worker=worker)[0] for what in ("add", "sleep")]
        assert {run["resource"]["process.pid"] for run in runs} == {child.pid}
        child.wait(10)
        worker.wait_for_output(r"exited with 'signal 15 \(SIGTERM\)'")  # it still dies of it
    finally:
        worker.stop(signal.SIGTERM)
        worker.close()
