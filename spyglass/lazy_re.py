"""Regular expressions compiled at their first use.

Compiled at import, spyglass's patterns (incoming trace context, secret scrubbing) took
about 3 ms of every instrumented process's startup, more than the rest of its imports,
for patterns many processes use late or never.
"""
import re


class LazyRegex:
    """``re.compile(pattern, flags)``, done when first used; the methods spyglass uses."""

    __slots__ = ("_pattern", "_flags", "_compiled")

    def __init__(self, pattern, flags=0):
        self._pattern = pattern
        self._flags = flags
        self._compiled = None

    def compiled(self) -> re.Pattern:
        compiled = self._compiled
        if compiled is None:
            compiled = self._compiled = re.compile(self._pattern, self._flags)
        return compiled

    def match(self, string, *span):
        return self.compiled().match(string, *span)

    def fullmatch(self, string, *span):
        return self.compiled().fullmatch(string, *span)

    def search(self, string, *span):
        return self.compiled().search(string, *span)

    def sub(self, replacement, string, count=0):
        return self.compiled().sub(replacement, string, count)
