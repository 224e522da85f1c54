"""RQ jobs, and a Flask app that enqueues them (they know nothing of spyglass):
``rq worker --url $RQJOBS_REDIS $RQJOBS_QUEUE``."""
import os
import sqlite3
from datetime import timedelta

from flask import Flask, jsonify
from redis import Redis
from rq import Queue, Retry, get_current_job


def count_words(text):
    with sqlite3.connect(":memory:") as connection:
        connection.execute("SELECT ?", (text,)).fetchone()
    return len(text.split())


def fail(secret):
    raise ValueError(f"cannot go on with {secret}")


def flaky():
    if get_current_job().retries_left:  # the first attempt fails, the retry succeeds
        raise ConnectionError("first attempt fails")
    return "second attempt"


web = Flask(__name__)


def queue(**options):
    return Queue(os.environ["RQJOBS_QUEUE"], connection=Redis.from_url(os.environ["RQJOBS_REDIS"]),
                 **options)


@web.route("/enqueue/<what>")
def enqueue(what):
    if what == "count":
        meta = {"owner": "shop"}
        job = queue().enqueue(count_words, "three small words", meta=meta)
        return jsonify(id=job.id, meta=meta)
    if what == "fail":
        job = queue().enqueue(fail, "hunter2-secret")
    elif what == "flaky":
        job = queue().enqueue(flaky, retry=Retry(max=1))
    elif what == "in":
        job = queue().enqueue_in(timedelta(seconds=0), count_words, "scheduled")
    elif what == "sync":
        job = queue(is_async=False).enqueue(count_words, "run right here")
    else:
        return jsonify(error=what), 404
    return jsonify(id=job.id)
