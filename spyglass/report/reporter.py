"""The reporter: bounded queues drained by one daemon thread per process.

The app's threads only append to a deque (dropping and counting when it is full): one for
finished traces, the bulk, one for log records and metrics. The thread batches, encodes
and exports. It is started on first use and restarted in a forked child:
``os.register_at_fork`` covers ``os.fork``, and a look at ``process.fork_marker`` on every
submit covers forks done in C (uWSGI), which skip those hooks.

What the queues hold is bounded in items (``max_queue_size``) and, for traces, in spans
(``max_queue_spans``); a request body in spans and bytes (``max_batch_spans``,
``max_batch_bytes``), and one a receiver refuses as too large (413) is split in halves.

At interpreter exit, and on SIGTERM where nothing else handles it, what is queued is
drained within ``shutdown_timeout``, by one owner at a time. A process that queued nothing
exits at once; an endpoint that refuses (or was failing) gets one attempt more, then the
rest is dropped and counted: exit never waits on a collector that is down.

The thread imports lazily (httpx, the collectors' modules): ``os.fork`` does not wait for
that, nor for the encoding; a child forked in the middle of an import forgets it and imports
afresh (``threads.forget_unfinished_imports``).
"""
import atexit
import collections
import logging
import os
import threading
import time
from itertools import repeat, starmap

from .. import process
from ..process import suppressed
from . import otlp
from . import threads

log = logging.getLogger("spyglass")


TRACES, LOGS, METRICS, PROFILES = "traces", "logs", "metrics", "profiles"
PATHS = {TRACES: "/v1/traces", LOGS: "/v1/logs", METRICS: "/v1/metrics",
         PROFILES: "/v1development/profiles"}
# A batch that cannot be sent is retried for this long at most (outside shutdown).
BATCH_RETRY_BUDGET = 30.0


class Reporter:
    def __init__(self, config, resource_attributes):
        self.config = config
        self._resource_attributes = resource_attributes
        self._periodic = []  # [callable returning OTLP metric dicts, interval, next due]
        self._final = []  # callables returning OTLP metric dicts, run once at exit
        # Profiles (spyglass.profile): how a batch of them becomes request bodies, given by
        # the profiler; whether the endpoint refused them (404: not asked again).
        self.profile_encoder = None
        self.profiles_refused = False
        self._reset()
        os.register_at_fork(after_in_child=self._after_fork)
        atexit.register(self.at_exit)

    def _reset(self):
        self._pid = os.getpid()
        self._generation = process.generation
        config = self.config
        self._max_queue_size = config.max_queue_size
        # No batch is larger than the queue; _quiet_below stays within its cap.
        self._batch_size = min(config.batch_size, self._max_queue_size)
        self._max_queue_spans = config.max_queue_spans
        self._max_batch_spans = max(1, min(config.max_batch_spans, config.max_queue_spans))
        self._traces = collections.deque()  # finished traces: lists of spans, or lone roots
        self._others = collections.deque()  # (LOGS, record) and (METRICS, [metric, ...])
        self._profiles = collections.deque()  # from the profiler's thread, see submit_profile
        # Spans of the queued lists (lone roots are counted by the queue's length): added
        # by the app's threads under _spans_lock, taken off by the drain's owner alone, so
        # the drain (which may run in a signal handler) never waits for the app's lock.
        self._spans_lock = threading.Lock()
        self._spans_in = 0
        self._spans_out = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # Below this queue length a submit only appends: 0 while there is no thread (a
        # submit starts it), batch_size while it sleeps (a full batch wakes it), the queue's
        # cap once it has been woken (beyond it, drop). One test on the app's side.
        self._quiet_below = 0
        self._interrupt = threading.Event()  # cuts a retry's backoff short on flush/exit
        # Re-entrant: a signal handler may flush while this thread waits in a flush.
        self._idle = threading.Condition(threading.RLock())
        self._thread = None
        self._held = False  # True: no thread in this process (a uWSGI master), see hold()
        self._busy = False
        self._deadline = None
        # The drain has one owner at a time (the thread, or a flush when there is none).
        self._drain_lock = threading.Lock()
        self._drain_owner = None
        self._exiting = False  # at_exit has begun: no thread starts, failures end the drain
        self._then = None  # while at_exit runs: what to call when it is done
        self._given_up = False  # exiting, and the endpoint failed: drop what is left
        self._transport = None
        self._envelopes = {}
        self._too_large_logged = False
        self.resource = None
        # "queued" is derived (taken + still waiting) so the app's side counts nothing.
        # Items dropped: "dropped" when a queue is full, "too_large" when a receiver
        # refused a lone trace with 413, "abandoned" at exit with the endpoint down.
        self.counters = {"taken": 0, "dropped": 0, "sent": 0, "failed": 0, "too_large": 0,
                         "abandoned": 0}
        self._counters_start_ns = time.time_ns()

    def _after_fork(self):
        """In a forked child: a fresh queue, lock and thread; what the parent had queued
        is the parent's to send. New trace ids too, if the at-fork hooks did not run."""
        process.check_fork()
        if self._pid != os.getpid():
            self._reset()
            if self._periodic:
                now = time.monotonic()
                for task in self._periodic:
                    task[2] = now + task[1]
                self.start()
        self._generation = process.generation

    # -- the app's side: cheap, never blocks ---------------------------------------------

    def submit_root(self, root):
        """A finished local trace that is its root span alone (the commonest)."""
        # _submit, written out: this runs once per trace (tests/test_written_out_copies.py
        # holds the two equal). The tracer has just looked for a fork when the trace began
        # (process.fork_marker), so the generation says it all.
        if self._generation != process.generation:
            self._after_fork()
        queue = self._traces
        if len(queue) < self._quiet_below:
            queue.append(root)
        else:
            self._append_or_drop(queue, root)

    def submit_trace(self, spans):
        """A finished local trace of several spans: the list of them. Counted against
        ``max_queue_spans`` too, under a lock (such a trace costs microseconds already)."""
        if self._generation != process.generation:
            self._after_fork()
        count = len(spans)
        queue = self._traces
        with self._spans_lock:
            queued = self._spans_in - self._spans_out + count
            if queued > self._max_queue_spans or len(queue) >= self._max_queue_size:
                self.counters["dropped"] += 1
                return
            self._spans_in += count
            queue.append(spans)
        if self._thread is None:
            if not self._exiting:
                self.start()
        elif queued >= self._max_batch_spans and self._quiet_below < self._max_queue_size:
            self._quiet_below = self._max_queue_size  # woken once per batch, as below
            self._wake.set()

    def submit_log(self, record):
        self._submit(LOGS, record)

    def submit_metrics(self, metrics):
        self._submit(METRICS, metrics)

    def _submit(self, kind, item):
        # Looking at process.fork_marker is all fork detection costs the app: it catches forks
        # made in C (uWSGI) that skipped the at-fork hooks. A deque append is atomic, so
        # there is no lock: under a race the cap can be passed by a few items, one per
        # thread at most. Nor is there one for counting a drop: the increment of a dict's
        # int calls no Python code, so under the GIL no other thread runs in its middle; a
        # dead collector makes every submit a drop, and a lock would double its cost.
        process.check_fork()
        if self._generation != process.generation:
            self._after_fork()
        queue = self._others
        if len(queue) < self._quiet_below:
            queue.append((kind, item))
        else:
            self._append_or_drop(queue, (kind, item))

    def _append_or_drop(self, queue, item):
        """A submit at _quiet_below or beyond: drop when the queue is full; else append,
        and start the thread, or wake it for a full batch."""
        if len(queue) >= self._max_queue_size:
            self.counters["dropped"] += 1  # no lock: see _submit
            return
        queue.append(item)
        if self._thread is None:
            if not self._exiting:  # at exit the drain runs on the exiting thread
                self.start()
        elif len(queue) >= self._batch_size:
            # Once per batch, not on every submit while the thread is on its way: setting
            # an Event takes a lock and notifies, which costs more than the submit itself.
            self._quiet_below = self._max_queue_size
            self._wake.set()

    def submit_profile(self, item):
        """A profile (spyglass.profile), from the profiler's thread, not the app's: it
        waits for the next periodic drain."""
        if self.profiles_refused or len(self._profiles) >= self._max_queue_size:
            self.counters["dropped"] += 1
            return
        self._profiles.append(item)

    def add_periodic(self, collect, interval, first_delay=None):
        """Run ``collect()`` on the reporter thread every ``interval`` seconds (the first
        time ``first_delay`` from now, by default one interval); it returns OTLP metric
        dicts to export."""
        delay = interval if first_delay is None else first_delay
        self._periodic.append([collect, interval, time.monotonic() + delay])
        self.start()

    def add_final(self, collect):
        """Run ``collect()`` once at exit, before draining: what a periodic task would
        have exported next (so a worker's last interval of metrics is not lost)."""
        self._final.append(collect)

    def hold(self):
        """Never start the thread in this process (its forked children are not held);
        what it queues waits for exit. For a process that forks in C at any moment, like
        the uWSGI master: a thread of ours holding a lock at that moment would deadlock
        the child."""
        self._held = True

    def release(self):
        """In a child forked in C: fresh state (if not reset already), and the thread
        starts now rather than at the first submit."""
        self._held = False
        if self._pid != os.getpid() or self._generation != process.generation:
            self._after_fork()
        self.start()

    def start(self):
        if self._held:
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            # A greenlet if what it waits on is gevent's (see threads.py).
            thread = threads.new(self._run, "spyglass-reporter",
                                 cooperative=threads.is_gevents(self._wake))
            self._thread = thread
        try:
            thread.start()
        except RuntimeError:  # interpreter shutting down: at_exit drains synchronously
            self._thread = None
        else:
            self._quiet_below = self._batch_size

    # -- draining --------------------------------------------------------------------------

    def flush(self, timeout=None) -> bool:
        """Export everything queued now; True when all of it was handled in time."""
        timeout = self.config.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        thread = self._thread
        if thread is None or not thread.is_alive() or threads.is_current(thread):
            return self._drain(deadline)
        outer_deadline = self._deadline  # a flush this one interrupted (a signal handler's)
        self._deadline = deadline if outer_deadline is None else min(deadline, outer_deadline)
        self._interrupt.set()
        try:
            with self._idle:
                self._wake.set()
                while self._traces or self._others or self._profiles or self._busy:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not thread.is_alive():
                        break
                    self._idle.wait(remaining)
        finally:
            self._deadline = outer_deadline
            if outer_deadline is None:
                self._interrupt.clear()
        return not (self._traces or self._others or self._profiles or self._busy)

    def _is_exiting(self):
        return self._exiting

    def draining_at_exit(self):
        """True while ``at_exit`` runs (in this process)."""
        return self._exiting and self._pid == os.getpid() and self._then is not None

    def after_exit_drain(self, then):
        """Call ``then()`` when the at-exit drain under way is over (a signal handler's
        way of letting it finish)."""
        self._then.append(then)

    def at_exit(self):
        """Send the last metrics and drain, within ``shutdown_timeout``; once per process
        (atexit, a SIGTERM, or a multiprocessing worker's end may each call it)."""
        if self._pid != os.getpid() or self._exiting:
            return
        self._exiting = True
        self._then = []
        try:
            self._drain_at_exit()
        finally:
            then, self._then = self._then, None
            for callback in then:
                callback()

    def _drain_at_exit(self):
        try:
            self._run_final()
            if not (self._traces or self._others or self._profiles or self._busy):
                return
            log.debug("spyglass: draining %d items at exit", self._waiting())
            if not self.flush(self.config.shutdown_timeout):
                log.warning("spyglass: exiting with %d items not exported (shutdown_timeout=%ss)",
                            self._waiting(), self.config.shutdown_timeout)
        except KeyboardInterrupt:
            pass  # Ctrl-C while draining: the person wants the process gone, not our data
        except Exception:
            log.exception("spyglass: error while draining at exit")

    def _run(self):
        suppressed.set(True)
        while True:
            self._wake.wait(self._seconds_to_next_due())
            self._wake.clear()
            self._quiet_below = self._batch_size
            try:
                self._run_periodic()
                self._drain(time.monotonic() + BATCH_RETRY_BUDGET, periodic=True)
            except Exception:
                log.exception("spyglass: reporter error (continuing)")
            with self._idle:
                self._idle.notify_all()

    def _seconds_to_next_due(self):
        wait = self.config.flush_interval
        now = time.monotonic()
        for _collect, _interval, due in self._periodic:
            wait = min(wait, max(0.0, due - now))
        return wait

    def _run_periodic(self):
        now = time.monotonic()
        for task in self._periodic:
            collect, interval, due = task
            if now >= due:
                task[2] = now + interval
                self._collect(collect, "")

    def _run_final(self):
        for collect in self._final:
            self._collect(collect, " at exit")

    def _collect(self, collect, when):
        """Submit what a metrics collector gives; its failure is logged (``when``: a note
        for the log line), and the others run all the same."""
        try:
            metrics = collect()
        except Exception:
            log.exception("spyglass: metrics collector %r failed%s", collect, when)
            return
        if metrics:
            self.submit_metrics(metrics)

    def _drain(self, deadline, periodic=False) -> bool:
        """Send what is queued, batch by batch, until empty or past ``deadline`` (or the
        earlier deadline of a flush under way); True when all was sent. One owner at a
        time: a drain re-entered on its own thread (from a signal handler) returns at once,
        another waits for its turn until ``deadline``.

        ``periodic`` (on the thread): the periodic tasks that are due also run between
        batches, unless a flush is under way. Under a steady load the queue may not empty
        for the whole retry budget, and the metrics' fold must not wait that long (what the
        app records meanwhile would pile up to its cap, then be dropped), nor the metrics'
        export."""
        me = threading.get_ident()
        if self._drain_owner == me:
            return False
        if not self._drain_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return False
        self._drain_owner = me
        try:
            return self._drain_owned(deadline, periodic)
        finally:
            self._drain_owner = None
            self._drain_lock.release()

    def _drain_owned(self, deadline, periodic):
        ok = True
        while ((self._traces or self._others or self._profiles)
               and time.monotonic() < self._current_deadline(deadline)):
            self._busy = True
            batches, spans = self._take_batch()
            try:
                for kind, items in batches.items():
                    ok &= self._export(kind, items, deadline)
                if self._given_up:
                    self._abandon_queued()
            finally:
                self._spans_out += spans  # the budget covers a batch until it is sent
                self._busy = False
            if periodic and self._deadline is None:
                self._run_periodic()
        return ok and not (self._traces or self._others or self._profiles)

    def _take_batch(self):
        """Up to batch_size items off each queue, by kind, and the spans of the lists
        among them. This thread holds the GIL while it runs, so the app's threads wait for
        it: the traces are taken in one C call."""
        batches = {}
        traces = []
        try:  # a flush on another thread may take the last ones meanwhile
            traces.extend(starmap(self._traces.popleft,
                                  repeat((), min(len(self._traces), self._batch_size))))
        except IndexError:
            pass
        spans = 0
        if traces:
            batches[TRACES] = traces
            if self._spans_in != self._spans_out:  # lists among them (lone roots weigh 0)
                spans = sum([len(trace) for trace in traces if trace.__class__ is list])
        others = self._others
        logs, metrics = [], []
        taken = len(traces)
        for _ in range(min(len(others), self._batch_size)):
            try:
                kind, item = others.popleft()
            except IndexError:
                break
            taken += 1
            if kind is LOGS:
                logs.append(item)
            else:
                metrics.extend(item)
        if logs:
            batches[LOGS] = logs
        if metrics:
            batches[METRICS] = metrics
        profiles = self._profiles
        if profiles:
            batches[PROFILES] = [profiles.popleft()
                                 for _ in range(min(len(profiles), self._batch_size))]
            taken += len(batches[PROFILES])
        self.counters["taken"] += taken
        return batches, spans

    def _abandon_queued(self):
        """At exit with the endpoint down: drop what is left, counted."""
        dropped = 0
        for queue in (self._traces, self._others, self._profiles):
            while True:
                try:
                    item = queue.popleft()
                except IndexError:
                    break
                dropped += 1
                if item.__class__ is list:
                    self._spans_out += len(item)
        self.counters["abandoned"] += dropped

    def _waiting(self):
        return len(self._traces) + len(self._others) + len(self._profiles)

    def _export(self, kind, items, deadline) -> bool:
        """Send ``items`` of one kind in as many requests as ``max_batch_spans`` and
        ``max_batch_bytes`` require; True when all were sent."""
        try:
            if self._transport is None or self.resource is None:
                if self._exiting and self._transport is None and self._endpoint_refuses():
                    self._given_up = True  # nothing imported, nothing sent: the drop is counted
                    self.counters["abandoned"] += self._weight(kind, items)
                    return False
                self._prepare()  # the transport, the resource, the encoder: at first use
            if kind is PROFILES:
                return self._export_profiles(items, deadline)
            from .encode import encoded_items

            max_spans, max_bytes = self._max_batch_spans, self.config.max_batch_bytes
            ok = True
            texts, spans, size = [], 0, 0
            for text, weight in encoded_items(kind, items):
                if texts and (spans + weight > max_spans or size + len(text) > max_bytes):
                    ok &= self._send(kind, texts, deadline)
                    texts, spans, size = [], 0, 0
                texts.append(text)
                spans += weight
                size += len(text) + 1
            if texts:
                ok &= self._send(kind, texts, deadline)
            return ok
        except Exception:
            log.exception("spyglass: could not export %s", kind)
            self.counters["failed"] += self._weight(kind, items)
            return False

    def _send(self, kind, texts, deadline) -> bool:
        """One request of ``texts`` (encoded items); a 413 splits it in halves, down to one
        item, which is then dropped. Counted by item (a metrics request counts one)."""
        from .encode import body_pieces
        from .transport import SENT, TOO_LARGE

        count = len(texts) if kind != METRICS else 1
        if self._given_up:
            self.counters["abandoned"] += count
            return False
        head, tail = self._envelope(kind)
        data = self._transport.compress(body_pieces(head, texts, tail))
        status = self._transport.send(PATHS[kind], data, lambda: self._current_deadline(deadline),
                                      self._sleep, give_up=self._is_exiting)
        if status is TOO_LARGE:
            if len(texts) > 1:
                half = len(texts) // 2
                return self._send(kind, texts[:half], deadline) & self._send(kind, texts[half:],
                                                                              deadline)
            self.counters["too_large"] += 1
            if not self._too_large_logged:
                self._too_large_logged = True
                log.warning("spyglass: the collector refused a %s item of %d bytes as too large "
                            "(413); such items are dropped and counted", kind, len(texts[0]))
            return False
        if status is SENT:
            self.counters["sent"] += count
            return True
        self.counters["failed"] += count
        if self._exiting:
            self._given_up = True
        return False

    def _export_profiles(self, items, deadline) -> bool:
        """Profiles go as protobuf, in the bodies the profiler's encoder makes (bounded
        by max_batch_bytes), each sent once; a receiver that answers 404 does not take
        profiles, and none are sent to it again."""
        from .transport import NOT_FOUND, SENT, TOO_LARGE

        ok = True
        bodies = self.profile_encoder(self.resource, items, self.config.max_batch_bytes)
        for body, count in bodies:
            if self.profiles_refused or self._given_up:
                self.counters["abandoned" if self._given_up else "dropped"] += count
                ok = False
                continue
            status = self._transport.send(
                PATHS[PROFILES], self._transport.compress((body,)),
                lambda: self._current_deadline(deadline), self._sleep, give_up=self._is_exiting,
                content_type="application/x-protobuf", not_found=True)
            if status is SENT:
                self.counters["sent"] += count
                continue
            ok = False
            if status is NOT_FOUND:
                self.profiles_refused = True
                self.counters["dropped"] += count
                log.warning("spyglass: %s does not take profiles (404 on %s); profiling "
                            "stops", self.config.endpoint, PATHS[PROFILES])
            elif status is TOO_LARGE:
                self.counters["too_large"] += count
            else:
                self.counters["failed"] += count
                if self._exiting:
                    self._given_up = True
        return ok

    @staticmethod
    def _weight(kind, items):
        return len(items) if kind != METRICS else 1

    def _prepare(self):
        if self._transport is None:
            self._transport = self._new_transport()
        if self.resource is None:
            self.resource = self._resource_attributes()
        from . import encode  # noqa: F401  (json with it)

    def _envelope(self, kind):
        envelope = self._envelopes.get(kind)
        if envelope is None:
            from .encode import envelope as make_envelope

            envelope = self._envelopes[kind] = make_envelope(kind, self.resource)
        return envelope

    def _endpoint_refuses(self) -> bool:
        """At exit, before anything was ever sent: whether the endpoint refuses a TCP
        connection, asked without importing httpx (a tenth of a second here) for nothing."""
        import socket
        from urllib.parse import urlsplit

        try:
            url = urlsplit(self.config.endpoint)
            port = url.port or (443 if url.scheme == "https" else 80)
            socket.create_connection((url.hostname, port), timeout=min(
                self.config.timeout, self.config.shutdown_timeout)).close()
        except (OSError, ValueError):
            return True
        return False

    def _new_transport(self):
        from .transport import Transport  # httpx: imported here, off the app's path

        # The first request imports too: socket.getaddrinfo looks up the idna codec for the
        # host name. Import it now, with the rest, rather than during a send.
        "localhost".encode("idna")
        return Transport(self.config.endpoint, self.config.headers, self.config.timeout)

    def _current_deadline(self, deadline):
        flush_deadline = self._deadline
        return deadline if flush_deadline is None else min(deadline, flush_deadline)

    def _sleep(self, seconds):
        """Backoff between retries. A flush or exit interrupts it, and what is left of it
        is then slept within the flush's deadline; at exit, after an endpoint that did not
        answer at all, not slept: one attempt more, then the rest is dropped."""
        end = time.monotonic() + seconds
        if not self._interrupt.wait(seconds):
            return
        if self._exiting and not self._transport.answered:
            return
        remaining = self._current_deadline(end) - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)

    # -- the sensor's own health ------------------------------------------------------------

    def self_metrics(self):
        now = time.time_ns()
        start = self._counters_start_ns
        counters = dict(self.counters)
        waiting = self._waiting()
        return [
            otlp.sum_metric("spyglass.queue.queued", "{item}", "Items queued for export",
                            [otlp.number_point(counters["taken"] + waiting, now, start)]),
            otlp.sum_metric("spyglass.queue.dropped", "{item}", "Items dropped, by reason: "
                            "queue_full (a cap of the queue was reached), too_large (a receiver "
                            "refused the item alone with 413), exit (the endpoint was down at "
                            "exit)", [
                                otlp.number_point(counters[counter], now, start, {"reason": reason})
                                for counter, reason in (("dropped", "queue_full"),
                                                        ("too_large", "too_large"),
                                                        ("abandoned", "exit"))]),
            otlp.sum_metric("spyglass.export.sent", "{item}", "Items exported",
                            [otlp.number_point(counters["sent"], now, start)]),
            otlp.sum_metric("spyglass.export.failed", "{item}", "Items whose export failed",
                            [otlp.number_point(counters["failed"], now, start)]),
            otlp.gauge_metric("spyglass.queue.size", "{item}", "Items waiting in the queue",
                              [otlp.number_point(waiting, now)]),
        ]
