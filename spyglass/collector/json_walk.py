"""Reading a large JSON text one value at a time.

``json.loads`` builds the whole tree at once: for a 16 MB body of tiny attributes that is
200 MB of dicts before the first row is made. A ``Cursor`` walks the objects and arrays
around the values we want (an OTLP request's resource groups, scope groups and items) and
has the standard library's C scanner build each of those values alone, so only the value
being read is in memory. Its syntax is JSON's, checked as strictly as ``json.loads`` does.
"""
import json
import re
from json.decoder import scanstring

from .wire import BadRequest

_WHITESPACE = re.compile(r"[ \t\n\r]*")
# What matters to nesting, for stepping over a value unbuilt: strings (whose brackets do
# not count) and brackets.
_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_scan_once = json.JSONDecoder().scan_once


class Cursor:
    """A position in a JSON text, moved by reading, walking or skipping values."""

    #: What ``value_within`` gives for a value longer than its limit.
    TOO_LONG = object()

    def __init__(self, text):
        self.text = text
        self.position = 0
        self._typical = 1024  # characters of a value read by value_within, on a moving average

    def value(self):
        """The value at the cursor, built, the cursor moved past it."""
        self._next()
        try:
            value, self.position = _scan_once(self.text, self.position)
        except StopIteration:
            raise self._error("expecting a value") from None
        return value

    def value_within(self, limit):
        """The value at the cursor if its text is at most ``limit`` characters; else
        ``TOO_LONG``, the value skipped without being built whole.

        The scanner reads to the end of the text it is given, so it is given windows of
        the text, growing, up to ``limit``: a value too long fails in a window of that size
        (having built a bounded part of itself) instead of being built whole.
        """
        self._next()
        start = self.position
        window = 16 * self._typical
        while True:
            window = min(window, limit + 1)
            if start + window >= len(self.text):
                value = self.value()  # the rest of the text: read it where it is
                break
            try:
                value, length = _scan_once(self.text[start:start + window], 0)
            except (StopIteration, json.JSONDecodeError):
                if window > limit:
                    self.skip()
                    return self.TOO_LONG
                window *= 16
                continue
            self.position = start + length
            break
        size = self.position - start
        self._typical = (7 * self._typical + size) // 8
        return value if size <= limit else self.TOO_LONG

    def skip(self):
        """Move past the value at the cursor without building it."""
        if self._next() not in ("[", "{"):
            self.value()  # a scalar: one object, however long
            return
        depth = 0
        for match in _NESTING.finditer(self.text, self.position):
            token = match[0]
            if token in ("[", "{"):
                depth += 1
            elif token in ("]", "}"):
                depth -= 1
                if depth == 0:
                    self.position = match.end()
                    return
        raise self._error("unterminated array or object")

    def members(self, where):
        """The keys of the object at the cursor (``null``: none). After each key the caller
        reads, walks or skips its value; a value it leaves alone is skipped."""
        return self._entries("{", "}", where, "an object", self._key)

    def elements(self, where):
        """Yield once per element of the array at the cursor (``null``: none), which the caller
        reads, walks or skips; an element it leaves alone is skipped."""
        return self._entries("[", "]", where, "an array", lambda: None)

    def end(self):
        """Check that nothing but whitespace follows."""
        if self._next():
            raise self._error("extra data")

    # -- steps ---------------------------------------------------------------------------

    def _next(self):
        """The next character that is not whitespace ('' at the end), not consumed."""
        self.position = _WHITESPACE.match(self.text, self.position).end()
        return self.text[self.position:self.position + 1]

    def _entries(self, opening, closing, where, expected, head):
        if not self._opens(opening, where, expected):
            return
        if self._next() == closing:
            self.position += 1
            return
        while True:
            entry = head()
            before = self.position
            yield entry
            if self.position == before:
                self.skip()
            if not self._separator(closing):
                return

    def _key(self):
        """A member's key, the cursor moved past its ``:``."""
        if self._next() != '"':
            raise self._error("expecting a property name enclosed in double quotes")
        key, self.position = scanstring(self.text, self.position + 1)
        if self._next() != ":":
            raise self._error("expecting ':' delimiter")
        self.position += 1
        return key

    def _opens(self, bracket, where, expected):
        char = self._next()
        if char == bracket:
            self.position += 1
            return True
        if self.text.startswith("null", self.position):
            self.position += 4
            return False
        if char in ("[", "{"):
            raise BadRequest(400, f"{where}: expected {expected}, got {'an array' if char == '[' else 'an object'}")
        raise BadRequest(400, f"{where}: expected {expected}, got {json.dumps(self.value())[:60]}")

    def _separator(self, closing):
        """Past a ``,`` (True: more follow) or the ``closing`` bracket (False)."""
        char = self._next()
        self.position += 1
        if char == closing:
            return False
        if char != ",":
            raise self._error(f"expecting ',' delimiter or {closing!r}")
        return True

    def _error(self, message):
        return json.JSONDecodeError(message, self.text, self.position)
