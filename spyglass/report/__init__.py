"""Reporting: what the sensor has made leaves the process here -- the bounded queue and the
reporter's one daemon thread (``reporter``), OTLP's model and JSON encoding (``otlp``,
``encode``), the HTTP transport (``transport``), the resource attributes (``resource``),
and the exit and signal handling that drains what is queued (``signals``)."""
