"""Resource attributes, by OpenTelemetry's semantic-convention names, on every export."""
import os
import platform
import socket
import sys

from ..redact.argv import scrub_command_args

SDK_VERSION = "0.1.0"


def resource_attributes(config) -> dict:
    attributes = {
        "service.name": config.service_name,
        "host.name": socket.gethostname(),
        "process.pid": os.getpid(),
        "process.runtime.name": sys.implementation.name,
        "process.runtime.version": platform.python_version(),
        "process.command_args": scrub_command_args(getattr(sys, "orig_argv", None) or sys.argv or []),
        "telemetry.sdk.name": "spyglass",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": SDK_VERSION,
    }
    if config.release:
        attributes["service.version"] = config.release
    if config.environment:
        attributes["deployment.environment.name"] = config.environment
    # The user's own attributes add to ours but never rename the service behind our back.
    for key, value in config.resource_attributes.items():
        if key == "service.name" and config.sources.get("service_name") not in ("derived", "default"):
            continue
        attributes[key] = value
    return attributes
