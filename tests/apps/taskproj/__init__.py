"""An unmodified Celery project (it knows nothing of spyglass): ``celery -A taskproj worker``.

The broker and the queue come from the environment, so that the tests can run it on
RabbitMQ and on Redis, each on a queue of its own.
"""
import os
import sqlite3
import time

from celery import Celery
from celery.exceptions import Reject
from kombu import Queue

QUEUE = os.environ.get("TASKPROJ_QUEUE", "taskproj")

app = Celery("taskproj", broker=os.environ.get("TASKPROJ_BROKER", "amqp://guest:guest@127.0.0.1:5672//"))
app.conf.update(
    task_default_queue=QUEUE,
    task_queues=[Queue(QUEUE, auto_delete=True)],  # RabbitMQ drops it after the tests
    task_always_eager=os.environ.get("TASKPROJ_EAGER") == "1",
    task_protocol=int(os.environ.get("TASKPROJ_PROTOCOL", "2")),
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    beat_schedule={"tick": {"task": "taskproj.add", "schedule": 1.0, "args": (40, 2)}},
)


@app.task(name="taskproj.add")
def add(x, y):
    with sqlite3.connect(":memory:") as connection:
        connection.execute("SELECT ?", (x + y,)).fetchone()
    return x + y


@app.task(name="taskproj.fail")
def fail(secret):
    raise ValueError(f"cannot go on with {secret}")


@app.task(name="taskproj.flaky", bind=True, max_retries=2)
def flaky(self):
    if self.request.retries == 0:
        raise self.retry(exc=ConnectionError("first attempt fails"), countdown=0)
    return "second attempt"


@app.task(name="taskproj.reject")
def reject():
    raise Reject("not for us", requeue=False)


@app.task(name="taskproj.expected", throws=(KeyError,))
def expected():
    raise KeyError("expected")


@app.task(name="taskproj.sleep")
def sleep(seconds):
    print(f"sleeping {seconds}s", flush=True)  # the worker logs it: the tests wait for it
    time.sleep(seconds)
    return seconds
