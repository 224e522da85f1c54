"""A Flask app that enqueues Celery tasks (it knows nothing of spyglass)."""
from celery import chain, group
from flask import Flask, jsonify

from taskproj import add, expected, fail, flaky, reject, sleep

web = Flask(__name__)


@web.route("/enqueue/<what>")
def enqueue(what):
    if what == "add":
        result = add.delay(2, 3)
    elif what == "fail":
        result = fail.delay("hunter2-secret")
    elif what == "flaky":
        result = flaky.apply_async()
    elif what == "reject":
        result = reject.delay()
    elif what == "expected":
        result = expected.delay()
    elif what == "chain":
        last = chain(add.s(1, 2), add.s(10)).apply_async()
        return jsonify(id=last.parent.id, next=last.id)
    elif what == "group":
        results = group(add.s(1, 1), add.s(2, 2)).apply_async()
        return jsonify(id=results.id, each=[result.id for result in results.results])
    elif what == "send_task":
        result = web.celery.send_task("taskproj.add", args=(5, 5))
    elif what.startswith("sleep"):
        result = sleep.delay(float(what[len("sleep"):] or 1))
    else:
        return jsonify(error=what), 404
    return jsonify(id=result.id)


web.celery = add.app
