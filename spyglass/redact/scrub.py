"""Scrubbing: keep secrets and personal data out of everything spyglass sends.

A :class:`Scrubber` answers one question in several shapes: is this a secret?
Keys (dict keys, query parameters, local variable names, headers) are judged by
name; free text (exception messages, reprs of locals) is judged by patterns.

Every method is total: odd input never raises, it comes back as harmless text.
The common case -- nothing secret present -- costs a dict lookup or a few
regex scans that find nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from ..lazy_re import LazyRegex

__all__ = ["DEFAULT_SECRET_HEADERS", "DEFAULT_SECRET_KEYS", "FILTERED", "Scrubber"]

FILTERED = "[Filtered]"

# Names that mark a value as secret. How a name matches is decided by its
# length (see Scrubber.is_secret_key): long ones anywhere in a key, short ones
# only at the end of a word, so "author" and "tokenizer_name" stay readable.
DEFAULT_SECRET_KEYS: tuple[str, ...] = (
    "password", "passwd", "passphrase", "pwd", "secret", "credential",
    "token", "jwt", "auth", "authorization", "api_key", "apikey",
    "access_key", "private_key", "signature", "csrf", "xsrf",
    "session", "sessionid", "phpsessid", "sid", "cookie",
    "card_number", "cardnumber", "cc_number", "credit_card", "cvv", "cvc", "ssn",
)

DEFAULT_SECRET_HEADERS: tuple[str, ...] = (
    "authorization", "proxy-authorization", "cookie", "set-cookie",
    "x-api-key", "x-auth-token", "x-csrf-token", "x-csrftoken", "x-xsrf-token",
    "x-amz-security-token", "x-goog-api-key",
)

_URL_HEADERS = frozenset({"referer", "location", "content-location", "http_referer"})

# Terms this short match only as a whole word or a word's ending ("authtoken").
_SHORT_TERM = 5
_MAX_DEPTH = 10
_MAX_ITEMS = 500
_TRUNCATED = "[Truncated]"

_CAMEL_BOUNDARY = LazyRegex(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM = LazyRegex(r"[^a-z0-9]+")

# --- free-text patterns -----------------------------------------------------
# Each is anchored on a token start (a look-behind) so a long run of
# characters is scanned once, not once per starting position.
_EMAIL = LazyRegex(
    r"(?<![\w.%+-])[\w.%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}\b"
)
_CARD = LazyRegex(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])")
_JWT = LazyRegex(r"\beyJ[\w-]{4,}\.eyJ[\w-]{4,}\.[\w-]*")
_AUTH_SCHEME = LazyRegex(r"\b(?P<scheme>[Bb]earer|BEARER|[Bb]asic|BASIC)(?P<sep>\s+)(?P<cred>[\w~+/.-]{8,}=*)")
_URL_USERINFO = LazyRegex(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@]+@")
# key=value or 'key': value, where the key is judged by is_secret_key. A bare
# "key: value" is left alone: prose such as "unexpected token: '}'" is common.
# Source lines add the forms code writes (each piece below says which). An unquoted value
# followed by "(" is a call, code rather than a secret: password = getpass() stays readable.
_NAME = r"[\w.-]{1,64}"
_TYPE = r"[\w.\[\]]{1,64}(?![\w.\[\]])"
# A literal: with a prefix (f'', rb''), in triple quotes, or without its end (a line cut short).
_STRING = (r"""[rRbBuUfF]{0,2}(?:'''(?:[^'\\]|\\.|'(?!''))*(?:'''|\Z)"""
           r'''|"""(?:[^"\\]|\\.|"(?!""))*(?:"""|\Z)'''
           r"""|'(?:[^'\\]|\\.)*(?:'|\Z)|"(?:[^"\\]|\\.)*(?:"|\Z))""")
_KEY_VALUE = LazyRegex(
    # 'key': , "key"= , environ["KEY"] = , "key" == or !=
    rf"""(?P<key>(?P<q>['"]){_NAME}(?P=q)\]?\s*(?:[=!]=|[:=])"""
    # getenv("KEY", 'x'): then a quoted value only
    rf"""|(?<=\()(?P<q2>['"]){_NAME}(?P=q2),(?=\s*[rRbBuUfF]{{0,2}}['"])"""
    # key= , key == , key != , key := , key: str | None =
    rf"""|(?<![\w.-]){_NAME}(?![\w.-])(?:\s*:\s*{_TYPE}(?:\s*[|,]\s*{_TYPE}){{0,4}})?\s*[:!=]?=)"""
    # key = (<line break> 'x' <line break> )
    r"""\s*(?:\(\s*\n\s*)?"""
    # a literal, a tuple on one line (auth=('bob', 'x'): all of it), or a bare word
    rf"""(?P<value>{_STRING}|\([^()\n]{{0,256}}\)|[^\s&,;)}}\]'"(]+(?![^\s&,;)}}\]'"]))"""
)
_KEY_NAME = LazyRegex(r"[\w.-]+")
_OPENING_QUOTE = LazyRegex(r"""[rRbBuUfF]{0,2}('''|\"\"\"|'|")""")


# A one-line string literal of Python source, with its prefix (r, b, f …) and its quote.
_STRING_LITERAL = LazyRegex(r"""(?<![\w])([rRbBfFuU]{0,2})(["'])(?:\\.|(?!\2).)*\2""")


def mask_string_literals(code: str) -> str:
    """``code`` with what every one-line string literal holds replaced by ``?``: the lines of
    a slow call's stack say where it was made, and a literal there (a value, a statement)
    is the app's data."""
    return _STRING_LITERAL.sub(lambda found: f"{found.group(1)}{found.group(2)}?{found.group(2)}",
                               code)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _replace_card(match: re.Match) -> str:
    digits = match.group().replace(" ", "").replace("-", "")
    return FILTERED if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group()


def _replace_auth(match: re.Match) -> str:
    scheme, cred = match.group("scheme"), match.group("cred")
    # "Basic" is also an English word: only filter what decodes to user:password.
    if scheme.lower() == "basic" and not _is_basic_credential(cred):
        return match.group()
    return f"{scheme}{match.group('sep')}{FILTERED}"


def _is_basic_credential(cred: str) -> bool:
    import binascii  # lazily: only a "Basic <base64>" look-alike gets here

    try:
        return b":" in binascii.a2b_base64(cred + "=" * (-len(cred) % 4))
    except (binascii.Error, ValueError):
        return False


def _normalized_words(name: str) -> str:
    """'X-Api-Key' -> 'x_api_key', 'accessToken' -> 'access_token'."""
    return _NON_ALNUM.sub("_", _CAMEL_BOUNDARY.sub("_", name).lower()).strip("_")


def _key_matchers(keys: Iterable[str]) -> tuple[LazyRegex | None, LazyRegex | None]:
    """One regex for long terms (anywhere), one for short terms (word endings)."""
    long_terms, short_terms = set(), set()
    for key in keys:
        term = _NON_ALNUM.sub("", str(key).lower())
        if term:
            (short_terms if len(term) <= _SHORT_TERM else long_terms).add(term)

    def alternation(terms: set[str]) -> str:
        return "|".join(sorted(map(re.escape, terms), key=len, reverse=True))

    anywhere = LazyRegex(alternation(long_terms)) if long_terms else None
    word_end = LazyRegex(f"(?:{alternation(short_terms)})(?:_|$)") if short_terms else None
    return anywhere, word_end


class Scrubber:
    """Decides what is secret and replaces it with ``FILTERED``.

    ``secret_keys`` replaces the default key list, ``extra_keys`` adds to it.
    ``redact_patterns=False`` turns off free-text redaction (:meth:`text`);
    key-based filtering always stays on.
    """

    def __init__(self, secret_keys: Iterable[str] = DEFAULT_SECRET_KEYS,
                 extra_keys: Iterable[str] = (), redact_patterns: bool = True,
                 secret_headers: Iterable[str] = DEFAULT_SECRET_HEADERS):
        self._anywhere, self._word_end = _key_matchers([*secret_keys, *extra_keys])
        self._secret_headers = frozenset(str(h).lower().replace("_", "-") for h in secret_headers)
        self.redact_patterns = redact_patterns
        # Per instance, so a Scrubber with other keys never sees these answers.
        self._classify = lru_cache(maxsize=4096)(self._classify_uncached)

    # --- names --------------------------------------------------------------

    def is_secret_key(self, name: object) -> bool:
        """True when a key/parameter/variable/header name looks secret.

        Case and separators do not matter ('X-Api-Key', 'HTTP_AUTHORIZATION',
        'csrfmiddlewaretoken', 'accessToken'). Terms of five letters or fewer
        ('auth', 'token', 'pwd') must end a word, so 'author' and
        'tokenizer_name' are not secret while 'oauth' and 'authtoken' are.
        """
        try:
            if isinstance(name, bytes):
                name = name.decode("latin-1")
            return isinstance(name, str) and self._classify(name)
        except Exception:
            return False

    def _classify_uncached(self, name: str) -> bool:
        words = _normalized_words(name)
        if self._anywhere is not None and self._anywhere.search(words.replace("_", "")):
            return True
        return self._word_end is not None and self._word_end.search(words) is not None

    def _is_secret_header(self, name: str) -> bool:
        header = name.lower().replace("_", "-")
        if header.startswith("http-"):  # WSGI environ spelling: HTTP_AUTHORIZATION
            header = header[5:]
        return header in self._secret_headers or self.is_secret_key(header)

    # --- structures ---------------------------------------------------------

    def headers(self, headers: Mapping | Iterable[tuple[str, str]]) -> dict[str, str]:
        """Header name -> value, secret ones filtered; repeated names joined by ', '."""
        result: dict[str, str] = {}
        try:
            pairs = headers.items() if isinstance(headers, Mapping) else headers
            for name, value in pairs:
                name, value = _as_text(name), _as_text(value)
                if self._is_secret_header(name):
                    result[name] = FILTERED
                    continue
                if name.lower() in _URL_HEADERS:
                    value = self.url(value)
                # A repeated header joins with ", ", as HTTP itself folds them.
                result[name] = f"{result[name]}, {value}" if name in result else value
        except Exception:
            pass  # keep what was read so far: every value in it is already judged
        return result

    def mapping(self, data: object, _depth: int = 0) -> object:
        """A copy of nested dicts/lists/tuples with secret keys' values filtered.

        Strings are run through :meth:`text`. Deeper than 10 levels becomes
        '[Truncated]'; containers keep their first 500 items.
        """
        try:
            if isinstance(data, str):
                return self.text(data)
            if _depth >= _MAX_DEPTH and isinstance(data, (Mapping, list, tuple)):
                return _TRUNCATED
            if isinstance(data, Mapping):
                return {key: FILTERED if self.is_secret_key(key) else self.mapping(value, _depth + 1)
                        for key, value in _first(data.items())}
            if isinstance(data, (list, tuple)):
                items = [self.mapping(item, _depth + 1) for item in _first(data)]
                return tuple(items) if type(data) is tuple else items
            return data
        except Exception:
            return _TRUNCATED

    def query_string(self, qs: str) -> str:
        """Secret parameters' values filtered; everything else kept byte for byte."""
        try:
            if not qs or "=" not in qs:
                return qs
            parts = qs.split("&")
            changed = False
            for index, part in enumerate(parts):
                name, equals, _ = part.partition("=")
                if equals and self.is_secret_key(_unquote_name(name)):
                    parts[index] = f"{name}={FILTERED}"
                    changed = True
            return "&".join(parts) if changed else qs
        except Exception:
            return FILTERED

    def url(self, url: str) -> str:
        """Credentials in the authority become '[Filtered]@'; secret query and
        fragment parameters (OAuth's '#access_token=') are filtered."""
        try:
            rest, hash_mark, fragment = url.partition("#")
            rest, question_mark, query = rest.partition("?")
            rest = _URL_USERINFO.sub(rf"\g<scheme>{FILTERED}@", rest, count=1)
            if question_mark:
                rest += "?" + self.query_string(query)
            if hash_mark:
                rest += "#" + (self.query_string(fragment) if "=" in fragment else fragment)
            return rest
        except Exception:
            return FILTERED

    def text(self, text: str) -> str:
        """Free text with emails, Luhn-valid card numbers, Bearer/Basic
        credentials, JWTs, URL credentials and secret key=value pairs filtered."""
        if not self.redact_patterns:
            return text
        try:
            if "eyJ" in text:
                text = _JWT.sub(FILTERED, text)
            if "@" in text:
                text = _URL_USERINFO.sub(rf"\g<scheme>{FILTERED}@", text)
                text = _EMAIL.sub(FILTERED, text)
            if "earer" in text or "asic" in text or "EARER" in text or "ASIC" in text:
                text = _AUTH_SCHEME.sub(_replace_auth, text)
            if "=" in text or ":" in text or "'," in text or '",' in text:
                text = _KEY_VALUE.sub(self._replace_key_value, text)
            return _CARD.sub(_replace_card, text)
        except Exception:
            return FILTERED if isinstance(text, str) and text else text

    def _replace_key_value(self, match: re.Match) -> str:
        key_name = _KEY_NAME.search(match.group("key"))
        if key_name is None or not self.is_secret_key(key_name.group()):
            return match.group()
        value = match.group("value")
        prefix = match.group()[: match.start("value") - match.start()]
        quoted = _OPENING_QUOTE.match(value)
        if quoted is None:
            return f"{prefix}{FILTERED}"
        opening, quote = quoted.group(), quoted.group(1)
        closing = quote if len(value) >= len(opening) + len(quote) and value.endswith(quote) else ""
        # A value over several lines keeps its line breaks: source lines stay where they were.
        line_breaks = "\n" * value.count("\n")
        return f"{prefix}{opening}{FILTERED}{line_breaks}{closing}"


def _first(items: Iterable) -> Iterable:
    """At most _MAX_ITEMS items, without materialising the rest."""
    for count, item in enumerate(items):
        if count >= _MAX_ITEMS:
            return
        yield item


def _unquote_name(name: str) -> str:
    if "%" not in name and "+" not in name:
        return name
    from urllib.parse import unquote_plus  # lazily: it pulls in ipaddress
    return unquote_plus(name)


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return str(value)
