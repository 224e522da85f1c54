"""The process snapshot: what runs here, sent as one OTLP log record shortly after start
and again whenever it changes (a library instrumented later, another way of starting).

Event name ``spyglass.process.snapshot``; the body is JSON: service name, Python version
and implementation, installed distributions with their versions, the active
instrumentations and how spyglass was started (``autowrapt:<group>``, ``code``, ``cli:run``).
Read on the reporter thread, and the distributions from their folders' names where those
say the version (``name-1.2.dist-info``): parsing every METADATA file took ~90 ms of CPU for
130 distributions, held against the app's own threads at startup.
"""
import os
import re
import sys
import time

from ..report import otlp

EVENT_NAME = "spyglass.process.snapshot"
# A distribution's folder: its name (escaped: "-" as "_") and version, as wheels install it.
_FOLDER = re.compile(r"(?P<name>.+?)-(?P<version>[^-]+)\.(?:dist|egg)-info")
SEVERITY_INFO = 9


class ProcessSnapshot:
    def __init__(self, agent):
        self.agent = agent
        self._sent = None  # (pid, instrumentations, started by) last sent
        self._distributions = None

    def collect(self):
        """A periodic task: submits the snapshot when it changed; exports no metrics."""
        state = (os.getpid(), tuple(self.agent.instrumented), tuple(self.agent.started_by))
        if state != self._sent:
            self._sent = state
            self.agent.reporter.submit_log(self.record())
        return []

    def record(self):
        import json

        snapshot = self.snapshot()
        attributes = {
            "event.name": EVENT_NAME,
            "spyglass.instrumentations": snapshot["instrumentations"],
            "spyglass.started_by": snapshot["started_by"],
        }
        return otlp.log_record(time.time_ns(), SEVERITY_INFO, "INFO",
                               json.dumps(snapshot, sort_keys=True), attributes)

    def snapshot(self):
        import platform

        return {
            "service.name": self.agent.config.service_name,
            "process.pid": os.getpid(),
            "python.version": platform.python_version(),
            "python.implementation": sys.implementation.name,
            "distributions": self.distributions(),
            "instrumentations": list(self.agent.instrumented),
            "started_by": list(self.agent.started_by),
        }

    def distributions(self):
        """Installed distributions, normalized name (PEP 503) -> version; the first found on
        sys.path wins."""
        if self._distributions is None:
            from importlib import metadata

            found = {}
            for distribution in metadata.distributions():
                name, version = _name_and_version(distribution)
                if name and name not in found:
                    found[name] = version
            self._distributions = dict(sorted(found.items()))
        return self._distributions


def _name_and_version(distribution):
    """From the folder's name when it says both, else from the METADATA file."""
    folder = _FOLDER.fullmatch(getattr(getattr(distribution, "_path", None), "name", ""))
    if folder is not None:
        name, version = folder.group("name", "version")
    else:
        name, version = distribution.metadata["Name"], distribution.version
    return (re.sub(r"[-_.]+", "-", name).lower() if name else None), version
