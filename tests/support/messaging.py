"""Shared by the message-bus tests: a subscriber and a publisher, each a process under
AUTOWRAPT_BOOTSTRAP exporting to one receiver."""
import json

from .processes import Script


def bootstrap_env(receiver, **extra):
    return dict(AUTOWRAPT_BOOTSTRAP="spyglass", SPYGLASS_ENDPOINT=receiver.url,
                SPYGLASS_METRICS_INTERVAL="0", SPYGLASS_FLUSH_INTERVAL="0.2", **extra)


def exchange(receiver, subscriber, publisher, consumers, **env):
    """Run ``subscriber`` until it prints ``ready``, then ``publisher`` to its end, then the
    subscriber to its; wait for ``consumers`` CONSUMER spans. Returns (the publisher's JSON
    lines, the subscriber's, every span received)."""
    settings = bootstrap_env(receiver, **env)
    with Script(subscriber, **settings) as listening:
        listening.wait_for_line("ready")
        with Script(publisher, **settings) as sending:
            published, _ = sending.finish()
        received, _ = listening.finish()
    spans = receiver.wait_for(lambda r: len([s for s in r.spans() if s["kind"] == 5]) >= consumers
                              and r.spans())
    return ([json.loads(line) for line in published if line.startswith("{")],
            [json.loads(line) for line in received if line.startswith("{")], spans)
