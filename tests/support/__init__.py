"""What the tests share: real services (``services``), fresh interpreters (``processes``),
a real OTLP receiver (``otlp_receiver``), in-process instrumentation of calls (``calls``),
web apps and servers driven for real (``web``, ``servers``), task-queue workers and their
brokers (``tasks``), headless Chromium (``browser``), the profiles a receiver got
(``profiles``); ``plugin`` holds the fixtures (tests/conftest.py loads it)."""
