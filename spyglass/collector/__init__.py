"""``spyglass serve``: an embedded OTLP/HTTP collector.

Receives traces, metrics and logs from any OTLP sender (spyglass's own sensor, the
OpenTelemetry SDK exporters, an OpenTelemetry Collector), stores them (SQLite by
default), derives request statistics, slow calls and error groups from them, and shows
them through a JSON API, a web UI and ``spyglass report``.

It shares no code with the sensor: the only contract between the two is OTLP plus the
attribute conventions in docs/Telemetry.md. Importing this package imports nothing
heavy; protobuf, the OTLP bindings and Jinja2 are loaded only by the modules that need
them (``spyglass.collector.server`` and below).
"""
