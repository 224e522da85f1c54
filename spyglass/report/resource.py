"""Resource attributes, by OpenTelemetry's semantic-convention names, on every export."""
import os
import platform
import re
import socket
import sys

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


_SECRET_OPTION = re.compile(r"^(-{1,2}[\w.-]*(?:pass|secret|token|key|auth|credential)[\w.-]*)(=.*)?$", re.I)


def scrub_command_args(args):
    """Command lines carry secrets (``--password=…``, ``--token X``): mask their values."""
    scrubbed, mask_next = [], False
    for arg in args:
        arg = str(arg)
        if mask_next and not arg.startswith("-"):
            scrubbed.append("[Filtered]")
            mask_next = False
            continue
        match = _SECRET_OPTION.match(arg)
        mask_next = bool(match) and match.group(2) is None
        scrubbed.append(match.group(1) + "=[Filtered]" if match and match.group(2) else arg)
    return scrubbed
