"""RSS growth of an instrumented Flask app over 10,000 requests (bar: <= 1 MiB), with every
request traced and exported to a real receiver, against the same app without the sensor.

    python benchmarks/bench_memory.py

Each run is a fresh interpreter: a warm-up of 2,000 requests and 3 seconds (caches, the
reporter thread, httpx, the first exports, the process snapshot), then RSS before and after 10,000 more, and after 10,000 again,
each reading taken once what is queued has been exported. An SQL query on every request
and an error every 100th, so spans, error events and log records are all in play.
"""
import json
import os
import subprocess
import sys
import tempfile
import textwrap

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from otlp_receiver import OTLPReceiver  # noqa: E402

APP = textwrap.dedent("""
    import gc, json, sqlite3, time, psutil
    from flask import Flask

    app = Flask(__name__)
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"n{i}") for i in range(100)])

    @app.route("/items/<int:item>")
    def item(item):
        if item % 100 == 99:
            raise ValueError("every hundredth fails")
        return {"name": db.execute("SELECT name FROM t WHERE id = ?", (item % 100,)).fetchone()[0]}

    client = app.test_client()

    def run(n):
        for i in range(n):
            client.get(f"/items/{i}")

    def settled_rss():
        # What is queued for export is bounded (max_queue_size) but not growth: send it first.
        try:
            import spyglass.agent
            if spyglass.agent.get() is not None:
                spyglass.flush(30)
        except ImportError:
            pass
        gc.collect()
        return psutil.Process().memory_info().rss

    run(2000)
    time.sleep(3)  # the sensor's one-time work after start (the process snapshot) is done
    before = settled_rss()
    run(10000)
    after = settled_rss()
    run(10000)
    again = settled_rss()
    print(json.dumps({"before": before, "after": after, "again": again}))
""")


def measure(env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPYGLASS_", "AUTOWRAPT_"))}
    env.update(env_extra)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(APP)
    try:
        out = subprocess.run([sys.executable, handle.name], env=env, capture_output=True, text=True,
                             check=True, cwd=tempfile.gettempdir()).stdout
    finally:
        os.unlink(handle.name)
    figures = json.loads(out.strip().splitlines()[-1])
    return (figures["after"] - figures["before"], figures["again"] - figures["after"],
            figures["again"])


EXTRA = dict(arg.split("=", 1) for arg in sys.argv[1:])  # e.g. SPYGLASS_BATCH_SIZE=64


def main():
    receiver = OTLPReceiver().start()
    try:
        plain_growth, plain_second, plain_rss = measure({})
        ours_growth, ours_second, ours_rss = measure({"AUTOWRAPT_BOOTSTRAP": "flask",
                                         "SPYGLASS_ENDPOINT": receiver.url,
                                         "SPYGLASS_METRICS_INTERVAL": "1",
                                         **EXTRA})
    finally:
        receiver.stop()
    mib = 2 ** 20
    print(f"RSS growth over 10,000 requests: plain {plain_growth / mib:+.2f} MiB, "
          f"instrumented {ours_growth / mib:+.2f} MiB (RSS {plain_rss / mib:.1f} vs "
          f"{ours_rss / mib:.1f} MiB at the end)")
    print(f"over the next 10,000: plain {plain_second / mib:+.2f} MiB, instrumented "
          f"{ours_second / mib:+.2f} MiB")
    added = (ours_growth - plain_growth) / mib
    print(f"added by the sensor: {added:+.2f} MiB (bar <= 1 MiB) {'ok' if added <= 1 else 'OVER THE BAR'}")
    print(f"spans received: {len(receiver.spans())}, log records: {len(receiver.log_records())}")


if __name__ == "__main__":
    main()
