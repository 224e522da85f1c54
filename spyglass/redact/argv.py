"""Command lines carry secrets (``--password=…``, ``--token X``): the process's arguments,
sent as a resource attribute, have the values of secret-looking options masked here."""
import re

from .scrub import FILTERED

_SECRET_OPTION = re.compile(r"^(-{1,2}[\w.-]*(?:pass|secret|token|key|auth|credential)[\w.-]*)(=.*)?$", re.I)


def scrub_command_args(args):
    """Command lines carry secrets (``--password=…``, ``--token X``): mask their values."""
    scrubbed, mask_next = [], False
    for arg in args:
        arg = str(arg)
        if mask_next and not arg.startswith("-"):
            scrubbed.append(FILTERED)
            mask_next = False
            continue
        match = _SECRET_OPTION.match(arg)
        mask_next = bool(match) and match.group(2) is None
        scrubbed.append(match.group(1) + "=" + FILTERED if match and match.group(2) else arg)
    return scrubbed
