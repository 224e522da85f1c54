"""RQ end to end: a Flask app (service ``shop``) enqueues jobs on the real Redis, a real
``rq worker --burst`` (service ``rq``) runs each in a work horse it forks, and the real
OTLP receiver shows one trace across the two services."""
import json

import pytest

from support.otlp_receiver import OTLPReceiver
from support.tasks import (CONSUMER, PRODUCER, Worker, broker_url, children, command,
                          error_events, message_spans, unique_name, wait_for_runs)
from support.web import drive

pytest.importorskip("rq")
pytest.importorskip("flask")

SCENARIOS = ("count", "fail", "flaky", "in", "sync")
ENQUEUE = """
import json
from rqjobs import web

client = web.test_client()
for what in {paths!r}:
    print(json.dumps({{what: client.get("/enqueue/" + what).json}}))
"""


@pytest.fixture(scope="module")
def served():
    """(receiver, {scenario: what the view answered}, the worker's pid): every scenario
    enqueued once by the Flask app, then run by one burst worker and its work horses.
    Nothing is exported on the way (a minute between exports, no metrics): what arrives from the
    worker's side was drained by each work horse before RQ ended it, and by the worker
    at its exit."""
    url = broker_url("redis")
    queue = unique_name("rq")
    receiver = OTLPReceiver().start()
    try:
        run = drive(ENQUEUE.format(paths=SCENARIOS), receiver=receiver, RQJOBS_REDIS=url,
                    RQJOBS_QUEUE=queue, SPYGLASS_SERVICE_NAME="shop")
        answers = {}
        for output in run.outputs:
            answers.update(output)
        worker = Worker([command("rq"), "worker", "--burst", "--with-scheduler", "--url", url,
                         queue], receiver, SPYGLASS_FLUSH_INTERVAL="60",
                        SPYGLASS_METRICS_INTERVAL="0")
        try:
            worker.wait_for_output(r"done, quitting")
            if not worker.ended(5):
                # RQ's teardown may wait up to a minute for its pubsub thread (rq#1613,
                # with or without spyglass): the work horses are what this is about.
                worker.kill()
        finally:
            worker.close()
        yield receiver, answers, worker.process.pid
    finally:
        _remove_keys(url, queue)
        receiver.stop()


def _remove_keys(url, queue):
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(f"*{queue}*"))
    if keys:
        client.delete(*keys)


def producer_of(receiver, job_id):
    publish, = message_spans(receiver, job_id, PRODUCER)
    return publish


def test_a_view_that_enqueues_and_the_work_horse_run_are_one_trace(served):
    receiver, answers, worker_pid = served
    job_id = answers["count"]["id"]
    run, = wait_for_runs(receiver, job_id)
    publish = producer_of(receiver, job_id)
    request, = [span for span in receiver.spans() if span["spanId"] == publish["parentSpanId"]]
    assert request["name"] == "GET /enqueue/<what>"
    assert publish["name"] == "publish rqjobs.count_words"
    assert run["name"] == "rqjobs.count_words" and run["parentSpanId"] == publish["spanId"]
    assert run["traceId"] == publish["traceId"] == request["traceId"]
    assert publish["resource"]["service.name"] == "shop"
    assert run["resource"]["service.name"] == "rq"
    assert run["resource"]["process.pid"] != worker_pid  # the work horse ran it
    for span, operation in ((publish, "send"), (run, "process")):
        attrs = span["attrs"]
        assert attrs["messaging.system"] == "rq" and attrs["messaging.operation.type"] == operation
        assert attrs["messaging.message.id"] == job_id
        assert attrs["messaging.destination.name"].startswith("spyglass-tasks-rq-")
        assert attrs["messaging.rq.task.name"] == "rqjobs.count_words"
    # Enqueueing is Redis commands, timed under the producer span; the job's under its run.
    assert any(call["attrs"].get("db.system") == "redis" for call in children(receiver, publish))
    assert "SELECT ?" in [call["attrs"].get("db.query.text") for call in children(receiver, run)]
    assert answers["count"]["meta"] == {"owner": "shop"}  # the app's dict is left as it was
    assert receiver.schema_errors == []


def test_a_failed_job_is_an_error_event(served):
    receiver, answers, _ = served
    run, = wait_for_runs(receiver, answers["fail"]["id"])
    assert run["status"]["code"] == 2
    event, = error_events(receiver, run)
    assert event["attrs"]["exception.type"] == "ValueError"
    body = json.loads(event["body"]["stringValue"])
    assert body["handled"] is False and body["request"]["task"] == "rqjobs.fail"


def test_a_retried_job_is_a_span_per_attempt_the_next_linked_to_the_one_before(served):
    receiver, answers, _ = served
    job_id = answers["flaky"]["id"]
    first, second = wait_for_runs(receiver, job_id, count=2)
    publish = producer_of(receiver, job_id)  # RQ enqueues the retry itself: no new publish
    assert first["parentSpanId"] == second["parentSpanId"] == publish["spanId"]
    assert first["status"]["code"] == 2 and second.get("status", {}).get("code", 0) != 2
    assert second["links"] == [{"traceId": first["traceId"], "spanId": first["spanId"]}]
    assert first["resource"]["process.pid"] != second["resource"]["process.pid"]


def test_a_scheduled_job_continues_the_trace_that_scheduled_it(served):
    receiver, answers, _ = served
    job_id = answers["in"]["id"]
    run, = wait_for_runs(receiver, job_id)
    assert run["parentSpanId"] == producer_of(receiver, job_id)["spanId"]


def test_a_synchronous_queue_runs_the_job_inside_the_enqueue(served):
    receiver, answers, _ = served
    job_id = answers["sync"]["id"]
    run, = wait_for_runs(receiver, job_id)
    publish = producer_of(receiver, job_id)
    assert run["parentSpanId"] == publish["spanId"]
    assert run["resource"]["service.name"] == publish["resource"]["service.name"] == "shop"
