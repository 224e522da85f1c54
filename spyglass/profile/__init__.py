"""Profiles linked to traces: a sampler thread takes the Python stacks of the app's threads
at ``profiling_hz``, attributes each sample of a thread inside a traced request (or task)
to that request's local root and, at export, to the innermost span open at that moment,
and keeps a trace's samples only when the trace itself is exported. A process-wide profile
(every thread that is not idle, aggregated by stack) is exported every
``profiling_interval``. Both go out as OTLP profiles (``/v1development/profiles``).

- ``registry``: what the app's threads write (the local root each thread is in, the traces
  exported); imported with the tracer, so it imports nothing but the tracer.
- ``sampler``: the thread; ``encode``: the OTLP protobuf bodies, written by hand so that
  protobuf stays off the sensor. Both imported on the reporter thread, never at startup.
"""
