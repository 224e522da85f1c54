"""The sampler: one daemon thread taking every thread's Python stack (``sys._current_frames``)
``profiling_hz`` times a second, by the wall clock.

Each tick, for each thread but spyglass's own:

- not idle: the sample is counted in the process-wide profile, by stack;
- in a traced request (``registry.roots`` names an unfinished local root for it), idle or
  not: it goes to that trace's buffer (``registry.buffers``), with its time and state.

A thread is idle when its innermost Python frame is a known blocking call (a condition's or
a thread's wait, a selector's select, a socket's accept or read): reading each thread's CPU
state from /proc would cost a file read per thread per tick. A trace's samples keep their
state; the process-wide profile leaves idle threads out (a pool of waiting workers would
fill it). An idle thread outside a trace costs a tick a few lookups: its stack is not walked.

A tick that finds no thread in a trace and no stack changed since the one before (an idle
app, or one waiting in a sleep) lets the sampler doze: the next tick comes two periods
later, then four, up to MAX_DOZE_PERIODS. A stack seen at both ends of a doze counts in
the process-wide profile for all its periods; one that changed, for one (when it began is
not known). Most of what a tick costs is its wake-up (the kernel's timer, the GIL taken
back, caches gone cold), not its work, so waking less often is what makes an idle
process's sampler cheap. A trace that begins ends the doze at once
(``registry.wake_sampler``): its first samples are not late; a stack that changes ends it
at the next tick.

What a tick costs (benchmarks/bench_profiling.py counts it): no code object is hashed on
this thread, as CPython hashes one anew each time, from its constants (nested functions'
code included), names and line table, tens of thousands of instructions for a module's.
Codes are told apart by identity (``id``); a stack is a ``Stack``, hashed by identity,
interned by its codes' ids, and a thread whose stack is the one of its last sample shares
it without a lookup. Stacks are walked in C (``accumulate`` over ``f_back``).

A trace exported with samples (``registry.exported``) hands them to the reporter as a
``TraceProfile``; one never exported (head-dropped, fast, no error) is freed a second after
it ends. Everything held is bounded: samples per trace, samples buffered, stacks in the
process-wide profile; what a bound refuses is counted, and exported as the metric
``spyglass.profiler.dropped`` with the reporter's own (``self_metrics``).

The thread is started from the reporter thread (``Profiler.tick``, every second), never on
the app's: lazily, and anew in a forked child, where ``tick`` finds a new pid. It stops at
exit, when the reporter runs its final tasks.
"""
import logging
import os
import sys
import threading
import time
from itertools import accumulate, takewhile
from operator import attrgetter

from ..process import suppressed
from ..report import threads
from . import registry

log = logging.getLogger("spyglass")

MAX_DEPTH = 128                  # frames kept per stack, the innermost
MAX_SAMPLES_PER_TRACE = 6000     # a minute at 100 Hz
MAX_BUFFERED_SAMPLES = 1 << 16   # all traces' buffers together
MAX_STACKS = 2000                # distinct stacks in the process-wide profile
MAX_INTERNED = 1 << 14           # stacks shared between samples before the table is reset
UNEXPORTED_GRACE_NS = 10 ** 9    # a trace not exported this long after its end is freed
MAX_DOZE_PERIODS = 16            # the longest wait between ticks while nothing changes



class OtherStacks:
    """The one frame of the stack that counts those beyond MAX_STACKS (it reads as a code
    object to the encoder)."""
    co_qualname = co_name = "(other stacks)"
    co_filename = ""
    co_firstlineno = 0


OVERFLOW = (OtherStacks,)

# A stack's walk: each frame's code, and the f_back of all but the innermost (MAX_DEPTH).
CODE = attrgetter("f_code")
CALLERS = ("f_back",) * (MAX_DEPTH - 1)


class Stack(tuple):
    """The code objects of a stack, innermost first; hashed by identity, as interned: a
    dict keyed by stacks (the process-wide profile's counts, the encoder's table) does
    not hash its codes."""
    __slots__ = ()
    __hash__ = object.__hash__


class TraceProfile:
    """The samples of one exported trace: ``spans`` (its exported spans, or None when
    the root went alone) tell which span each sample falls in."""

    __slots__ = ("root", "spans", "thread_id", "samples", "period_ns")

    def __init__(self, root, spans, buffer, period_ns):
        self.root = root
        self.spans = spans
        self.thread_id = buffer.thread_id
        self.samples = buffer.samples  # [(time ns, stack, idle)]
        self.period_ns = period_ns


class ProcessProfile:
    """Every thread that was not idle over [start_ns, end_ns): samples counted by stack."""

    __slots__ = ("start_ns", "end_ns", "counts", "period_ns")

    def __init__(self, start_ns, end_ns, counts, period_ns):
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.counts = counts  # {stack: samples}
        self.period_ns = period_ns


class _Buffer:
    __slots__ = ("thread_id", "samples")

    def __init__(self, thread_id):
        self.thread_id = thread_id
        self.samples = []


def idle_codes():
    """The code objects whose being innermost means a thread waits (the sampler holds them,
    so that their ids stay theirs)."""
    import selectors
    import socket
    import threading as threading_module

    functions = [threading_module.Condition.wait, threading_module.Thread._wait_for_tstate_lock,
                 socket.socket.accept, socket.SocketIO.readinto]
    for name in ("SelectSelector", "PollSelector", "EpollSelector", "DevpollSelector",
                 "KqueueSelector"):
        selector = getattr(selectors, name, None)
        if selector is not None:
            functions.append(selector.select)
    hub = sys.modules.get("gevent.hub")
    if hub is not None:  # gevent's event loop, in C below this frame: every greenlet waits
        functions.append(hub.Hub.run)
    return frozenset(function.__code__ for function in functions)


class Profiler:
    def __init__(self, config, reporter):
        from .encode import request_bodies

        self.reporter = reporter
        reporter.profile_encoder = request_bodies
        self.hz = min(max(config.profiling_hz, 1.0), 1000.0)
        self.period_ns = int(1e9 / self.hz)
        self.interval_ns = int(max(config.profiling_interval, 1.0) * 1e9)
        self._idle = idle_codes()
        self._idle_ids = frozenset(map(id, self._idle))
        registry.forget_if_forked()  # made in a worker whose master wrote there
        self._reset()
        os.register_at_fork(after_in_child=self._after_fork)

    def _reset(self):
        self._pid = os.getpid()
        self._thread = None  # the sampler thread; it runs while it is this
        self._own = frozenset()
        self._counts = {}
        self._counts_start_ns = time.time_ns()
        self._hand_over_due = False
        self._interned = {}
        self._last_stacks = {}  # thread id -> its stack at its last sample
        self._alarm = threads.os_lock()  # held; a doze waits on it (see registry.alarm)
        self._alarm.acquire()
        self._buffered = 0
        self._last_sweep_ns = 0
        self.dropped_trace_full = self.dropped_buffers_full = 0  # samples refused by a bound
        self._dropped_start_ns = time.time_ns()

    def _after_fork(self):
        """In a forked child (at-fork hook, or ``tick`` seeing a new pid): the parent's
        samples and traces are not this process's, and its sampler thread is gone."""
        registry.forget_all()
        self._reset()

    # -- on the reporter thread -----------------------------------------------------------

    def tick(self):
        """Every second: start the sampler (again, in a fork), note spyglass's own threads,
        and ask for the process-wide profile when an interval has passed."""
        if self._pid != os.getpid():
            self._after_fork()
        if self.reporter.profiles_refused:  # the endpoint does not take them (404)
            self.stop()
            return
        self._note_own_threads()
        if self._thread is None:
            self.start()
        elif time.time_ns() - self._counts_start_ns >= self.interval_ns:
            self._hand_over_due = True

    def _note_own_threads(self):
        self._own = frozenset(thread.ident for thread in threading.enumerate()
                              if thread.name.startswith("spyglass"))

    def start(self):
        """Start sampling in a thread of its own (the reporter's tick calls this)."""
        # Signals are the app's threads' only: threads.new blocks them in ours.
        thread = self._thread = threads.new(self._run, "spyglass-profiler")
        try:
            thread.start()
        except RuntimeError:  # the interpreter is shutting down
            pass

    def stop(self):
        """Stop sampling; the thread ends within a tick."""
        thread, self._thread = self._thread, None
        registry.wake_sampler()  # from a doze
        if thread is not None and not threads.is_current(thread):
            deadline = time.monotonic() + 0.5  # (an OS thread under gevent has no join)
            while thread.is_alive() and time.monotonic() < deadline:
                threads.sleep(0.005)

    def at_exit(self):
        """Stop sampling and hand over what is held (the reporter's final task)."""
        if self._pid != os.getpid() or self._thread is None:
            return
        self.stop()
        self._take_exported()
        self._hand_over_process_profile()

    def self_metrics(self):
        """The samples refused by a bound, as the reporter's ``spyglass.queue.dropped``."""
        from ..report import otlp

        now, start = time.time_ns(), self._dropped_start_ns
        return [otlp.sum_metric(
            "spyglass.profiler.dropped", "{sample}", "Samples dropped, by reason: trace_full "
            "(a trace's sample cap was reached), buffers_full (the cap of all traces' samples "
            "held was reached)", [
                otlp.number_point(self.dropped_trace_full, now, start, {"reason": "trace_full"}),
                otlp.number_point(self.dropped_buffers_full, now, start, {"reason": "buffers_full"})])]

    # -- on the sampler thread ------------------------------------------------------------

    def _run(self):
        suppressed.set(True)
        me = threading.get_ident()
        this = self._thread  # set before it started; another (or None) once stopped
        period = 1.0 / self.hz
        sleep, monotonic = threads.sleep, time.monotonic
        periods = 1  # since the last tick: what its samples count for
        due = monotonic()
        while self._thread is this:
            try:
                steady = self._tick(me, periods)
            except Exception:
                log.exception("spyglass: the profiler failed; profiling stops")
                return
            periods = min(2 * periods, MAX_DOZE_PERIODS) if steady else 1
            due += period * periods
            delay = due - monotonic()
            if delay < 0:  # late (a long GIL hold): skip the ticks missed, do not catch up
                due = monotonic()
                delay = 0
            if periods == 1:
                sleep(delay)
            elif self._doze(delay):  # a trace began: it is sampled now
                since = monotonic() - (due - period * periods)
                periods = min(max(round(since / period), 1), periods)
                due = monotonic()

    def _doze(self, seconds):
        """Wait ``seconds`` unless a trace begins first: whether one did."""
        alarm = self._alarm
        registry.alarm = alarm
        # A trace begun since the tick, before the alarm was there to wake us.
        if any(not root.end_ns for root in list(registry.roots.values())):
            woken = True
        else:
            woken = alarm.acquire(timeout=seconds)
        registry.alarm = None
        return woken

    def _tick(self, me, periods=1):
        """A sample of every thread, ``periods`` after the last tick; whether nothing
        changed (no thread in a trace, every stack as at the last tick)."""
        steady = self._sample(me, periods)
        if registry.exported:
            self._take_exported()
        if self._hand_over_due:
            self._hand_over_due = False
            self._hand_over_process_profile()
        return steady

    def _sample(self, me, periods):
        now = time.time_ns()
        own, idle_ids, roots_get = self._own, self._idle_ids, registry.roots.get
        buffers = registry.buffers
        counts = self._counts
        last_stacks = self._last_stacks
        in_traces = changed = False
        frame = None
        frames = sys._current_frames()
        try:
            for thread_id, frame in frames.items():
                if thread_id == me or thread_id in own:
                    continue
                idle = id(frame.f_code) in idle_ids
                root = roots_get(thread_id)
                in_trace = root is not None and not root.end_ns
                if idle and not in_trace:
                    continue
                last = last_stacks.get(thread_id)
                stack = self._stack(frame, last)
                if stack is not last:
                    last_stacks[thread_id] = stack
                    changed = True
                if not idle:
                    # A stack seen at both ends of a doze stands for all of it; one new
                    # since the last tick, for a period (when it began is not known).
                    weight = periods if stack is last else 1
                    if stack in counts:
                        counts[stack] += weight
                    elif len(counts) < MAX_STACKS:
                        counts[stack] = weight
                    else:
                        counts[OVERFLOW] = counts.get(OVERFLOW, 0) + weight
                if not in_trace:
                    continue
                in_traces = True
                buffer = buffers.get(root)
                if buffer is None:
                    buffer = buffers[root] = _Buffer(thread_id)
                if len(buffer.samples) >= MAX_SAMPLES_PER_TRACE:
                    self.dropped_trace_full += 1
                elif self._buffered >= MAX_BUFFERED_SAMPLES:
                    self.dropped_buffers_full += 1
                else:
                    buffer.samples.append((now, stack, idle))
                    self._buffered += 1
        finally:
            del frames, frame  # the app's frames: not held a moment longer
        if now - self._last_sweep_ns >= UNEXPORTED_GRACE_NS:
            self._last_sweep_ns = now
            self._sweep(now)
        return not (in_traces or changed)

    def _stack(self, frame, last):
        """The code objects of ``frame`` and its callers, innermost first: one ``Stack``
        shared by every sample of the same stack (``last``, the thread's at its last
        sample, when it is still that)."""
        # Walked in C: accumulate asks each frame for its f_back, until one has none (a loop
        # in Python costs about a thousand instructions a frame).
        stack = tuple(map(CODE, takewhile(bool, accumulate(CALLERS, getattr, initial=frame))))
        if last == stack:  # as at its last sample (compared code by code, by identity)
            return last
        # Interned by the hash of its codes' ids: an entry's own codes keep those ids theirs,
        # and the entry is compared by identity, code by code, before it is shared.
        key = hash(tuple(map(id, stack)))
        interned = self._interned
        found = interned.get(key)
        if found != stack:  # new, or another stack whose ids hash alike: it takes the key
            if len(interned) >= MAX_INTERNED:
                interned.clear()
            interned[key] = found = Stack(stack)
        return found

    def _take_exported(self):
        """Hand the samples of the traces just exported to the reporter."""
        exported, buffers = registry.exported, registry.buffers
        submit = self.reporter.submit_profile
        while exported:
            root, spans = exported.popleft()
            buffer = buffers.pop(root, None)
            if buffer is not None:
                self._buffered -= len(buffer.samples)
                submit(TraceProfile(root, spans, buffer, self.period_ns))

    def _sweep(self, now):
        """Free the samples of traces that ended without being exported, and forget the
        threads that are gone."""
        buffers = registry.buffers
        for root in [root for root in buffers
                     if root.end_ns and now - root.end_ns >= UNEXPORTED_GRACE_NS]:
            buffer = buffers.pop(root, None)
            if buffer is not None:
                self._buffered -= len(buffer.samples)
        alive = sys._current_frames().keys()
        for by_thread in (registry.roots, self._last_stacks):
            for thread_id in [thread_id for thread_id in by_thread if thread_id not in alive]:
                by_thread.pop(thread_id, None)

    def _hand_over_process_profile(self):
        counts, self._counts = self._counts, {}
        start, self._counts_start_ns = self._counts_start_ns, time.time_ns()
        if counts:
            self.reporter.submit_profile(ProcessProfile(start, self._counts_start_ns, counts,
                                                        self.period_ns))
