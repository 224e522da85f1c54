"""RSS growth of an instrumented Flask app over 10,000 requests (bar: <= 1 MiB), with every
request traced and exported to a real receiver, against the same app without the sensor.

    python benchmarks/bench_memory.py

Each run is a fresh interpreter: a warm-up as long as a measured block, 10,000 requests, and
3 seconds (caches, the reporter thread, httpx, the first exports, the process snapshot), then
RSS before and after 10,000 more, and after 10,000 again, each reading taken once what is
queued has been exported. An SQL query on every request and an error every 100th, so spans,
error events and log records are all in play. Each response is closed, as a WSGI server
does (the request's span ends when the server has read the response or closes it).

The warm-up is a block long so that the window sees the app in its steady state. This loop
makes traces faster than the receiver here takes them, so the sensor's export queue fills
up to max_queue_size and drops from then on (the drops are printed): after 2,000 requests
the queue had only reached 1,000-1,500 of its 2,048 traces, and the rest of its first fill
fell in the window (about 1 MiB of RSS: one more arena of Python's allocator). That memory
is the queue's bound, reached once; growth beyond it is what the bar is about, and the
next block shows it too.
"""
import json
import os
import subprocess
import sys
import tempfile
import textwrap

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from support.otlp_receiver import OTLPReceiver  # noqa: E402

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
            client.get(f"/items/{i}").close()  # as a WSGI server does with every response

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

    run(10000)
    time.sleep(3)  # the sensor's one-time work after start (the process snapshot) is done
    before = settled_rss()
    run(10000)
    after = settled_rss()
    run(10000)
    again = settled_rss()
    try:
        import spyglass.agent
        running = spyglass.agent.get()
        dropped = [running.reporter.counters["dropped"], running.metrics.dropped]
    except (ImportError, AttributeError):
        dropped = [0, 0]
    print(json.dumps({"before": before, "after": after, "again": again, "dropped": dropped}))
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
            figures["again"], figures["dropped"])


EXTRA = dict(arg.split("=", 1) for arg in sys.argv[1:])  # e.g. SPYGLASS_BATCH_SIZE=64


def main():
    receiver = OTLPReceiver().start()
    try:
        plain_growth, plain_second, plain_rss, _ = measure({})
        ours_growth, ours_second, ours_rss, dropped = measure({"AUTOWRAPT_BOOTSTRAP": "flask",
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
    print(f"spans received: {len(receiver.spans())}, log records: {len(receiver.log_records())}; "
          f"dropped by the sensor: {dropped[0]} traces (queue full), {dropped[1]} metric values")


if __name__ == "__main__":
    main()
