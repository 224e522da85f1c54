"""SQL obfuscation, span signatures and grouping hashes.

Every statement the sensor records passes through :func:`normalize` before it
leaves the process, so two properties matter above all:

* **No literal leaks.** String, numeric, dollar-quoted and prefixed literals
  become ``?``. If the statement cannot be tokenized with certainty (an
  unmatched quote, an unterminated comment or dollar quote) the whole text
  becomes ``?``: a partially masked statement could carry a secret. Nothing
  here ever raises; on any internal error the answer is ``?`` as well.
* **Cheap on the hot path.** Results are cached by statement text; a hit is
  one dict lookup (~0.15 µs). A miss scans the statement with compiled
  regexes that only stop where something may need rewriting (quotes, digits,
  dashes, slashes, line breaks); keywords and names are skipped in C. A
  typical 200-character statement obfuscates in ~15 µs.

Dialects: "postgresql", "mysql", "sqlite" and "generic" (standard SQL:
'' strings, "" identifiers, nested /* */ comments). Unknown names fall back
to "generic". In MySQL mode "..." is a string (the default sql_mode), in
PostgreSQL mode '...' follows standard_conforming_strings (no backslash
escapes; E'...' has them).

Bind parameters are never seen here: callers pass the statement only.
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import NamedTuple

__all__ = ["Normalized", "normalize", "obfuscate"]

MASK = "?"
ELLIPSIS = "\u2026"
CACHE_SIZE = 2048

# --------------------------------------------------------------------------
# Scanner. Python's re engine is slow at trying many alternatives at every
# position, but fast at skipping to the next character of a plain set. So a
# statement is scanned in two steps: a character-set regex finds the next
# place where something may need rewriting (a quote, a digit, a dash...),
# then an anchored regex of alternatives says what, if anything, is there.
# Group names are what _obfuscate dispatches on.

# Whitespace other than " " (all of str.isspace) starts a "ws" token; runs
# of plain spaces are collapsed in the text between tokens instead, as
# stopping at every space would cost more than it saves.
_SPACE_TRIGGERS = r"\t\n\v\f\r\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_WS = r"(?P<ws>\s+)"
_LINE_COMMENT = r"(?P<comment>--[^\n]*\s*)"
# MySQL needs whitespace after "--" (so "1--1" is arithmetic) and allows "#".
_MYSQL_LINE_COMMENT = r"(?P<comment>(?:--(?=\s|$)|\#)[^\n]*\s*)"
_BLOCK_COMMENT = r"(?P<block>/\*[\s\S]*?\*/\s*)"
# PostgreSQL and standard SQL nest block comments: scanned by hand.
_NESTED_COMMENT_START = r"(?P<nested>/\*)"

# Literal prefixes (E'', B'', X'', N'', U&'') are recognised from the quote,
# looking back; a prefix only counts at the start of a word: WHERE'x' is
# WHERE followed by 'x', not WHER followed by E'x'.
_AT_WORD_START = r"(?<![\w$])"
_QUOTED_SQL = r"'[^']*(?:''[^']*)*'"  # '' is the only escape
_QUOTED_BACKSLASH = r"'[^'\\]*(?:(?:\\[\s\S]|'')[^'\\]*)*'"  # \' and ''
_DOUBLE_QUOTED_BACKSLASH = r'"[^"\\]*(?:(?:\\[\s\S]|"")[^"\\]*)*"'
_STRING = rf"(?P<string>{_QUOTED_SQL})"
_ESCAPE_STRING = rf"(?P<estring>(?<={_AT_WORD_START}[Ee]){_QUOTED_BACKSLASH})"
# Not after an E: an unterminated E'...' must fall through to "bad".
_NOT_ESCAPE_STRING = rf"(?P<string>(?<!{_AT_WORD_START}[Ee]){_QUOTED_SQL})"
_DOLLAR_TAG = r"\$(?:[^\W\d]\w*)?\$"
_DOLLAR_STRING = (
    rf"(?P<dollar>{_AT_WORD_START}\$(?P<tag>(?:[^\W\d]\w*)?)\$[\s\S]*?\$(?P=tag)\$)"
)
_MYSQL_STRING = rf"(?P<string>{_QUOTED_BACKSLASH}|{_DOUBLE_QUOTED_BACKSLASH})"
_DOUBLE_QUOTED_IDENT = r'"[^"]*(?:""[^"]*)*"'
_BACKTICK_IDENT = r"`[^`]*(?:``[^`]*)*`"
_BRACKET_IDENT = r"\[[^\]]*\]"
# A number starts a word: table1 is a name, $1 and ?1 are placeholders. A
# trailing run of word characters is swallowed with it, which covers 0xFF,
# 0b101, 1_000 and MySQL's digit-led names without ever leaving a digit
# behind. An optional minus is taken along; _obfuscate decides whether it
# is a sign.
_NUMBER = (
    r"(?P<number>(?P<minus>-\s*)?(?<![\w$?])"
    r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?[\w$]*)"
)


class _Dialect(NamedTuple):
    triggers: re.Pattern[str]
    token: re.Pattern[str]


def _spec(triggers, comments, strings, identifiers, bad):
    """A dialect's (extra trigger characters, token alternatives in order of priority): white
    space, its comments, its strings, its quoted identifiers, numbers, then ``bad``: what
    opens a string or comment left unterminated."""
    return triggers, [_WS, *comments, *strings, rf"(?P<ident>{identifiers})", _NUMBER,
                      rf"(?P<bad>{bad})"]


_DIALECT_SPECS = {
    "generic": _spec("", (_LINE_COMMENT, _NESTED_COMMENT_START), (_STRING,),
                     _DOUBLE_QUOTED_IDENT, r"['\"]"),
    "postgresql": _spec("$", (_LINE_COMMENT, _NESTED_COMMENT_START),
                        (_ESCAPE_STRING, _NOT_ESCAPE_STRING, _DOLLAR_STRING),
                        _DOUBLE_QUOTED_IDENT, rf"['\"]|{_AT_WORD_START}{_DOLLAR_TAG}"),
    "mysql": _spec("`#", (_MYSQL_LINE_COMMENT, _BLOCK_COMMENT), (_MYSQL_STRING,),
                   _BACKTICK_IDENT, r"['\"`]|/\*"),
    "sqlite": _spec("`[", (_LINE_COMMENT, _BLOCK_COMMENT), (_STRING,),
                    f"{_DOUBLE_QUOTED_IDENT}|{_BACKTICK_IDENT}|{_BRACKET_IDENT}",
                    r"['\"`\[]|/\*"),
}
# Compiled on first use, so that importing this module stays cheap.
_DIALECTS: dict[str, _Dialect] = {}  # dialect name as given -> rules
_DIALECT_ALIASES = {
    "postgres": "postgresql", "pg": "postgresql", "psycopg": "postgresql",
    "psycopg2": "postgresql", "mariadb": "mysql", "sqlite3": "sqlite",
}

_COMMENT_DELIMITER = re.compile(r"/\*|\*/")
_TRAILING_WS = re.compile(r"\s*")
_SPACE_RUN = re.compile(r"  +")
_LITERAL_PREFIXES = tuple("EeBbXxNn") + ("U&", "u&")
_DECIMAL_POINT = (".",)

# After these a minus is a sign, not a subtraction.
_SIGN_AFTER_CHARS = frozenset("(,=<>+-*/%|&^~!;:[")
_SIGN_AFTER_WORDS = frozenset(
    "SELECT WHERE AND OR NOT ON SET VALUES VALUE IN IS LIKE ILIKE BETWEEN WHEN "
    "THEN ELSE CASE RETURN RETURNING LIMIT OFFSET BY HAVING AS DEFAULT INTERVAL "
    "ANY ALL SOME TOP".split()
)
_LAST_WORD = re.compile(r"[\w$]+$")

_PLACEHOLDER = r"(?:\?|%s|%\([^()]*\)s|\$\d+|:\w+)"
# Found by its "(" (a literal start makes the re engine skip ahead fast);
# _in_list then checks that IN comes before it.
_PLACEHOLDER_LIST = re.compile(rf"\(\s*{_PLACEHOLDER}(?:\s*,\s*{_PLACEHOLDER})*\s*\)")
# One level of nested parentheses inside a row: VALUES (now(), ?), (now(), ?)
_ROW = r"\((?:[^()]|\([^()]*\))*\)"
_VALUES_ROWS = re.compile(rf"\b(VALUES?\s*{_ROW})(?:\s*,\s*{_ROW})+", re.IGNORECASE)


class _Unparseable(Exception):
    """The statement cannot be tokenized with certainty; mask all of it."""


def obfuscate(statement: str, dialect: str = "generic") -> str:
    """Return ``statement`` with every literal replaced by ``?``.

    Also strips comments, collapses whitespace, IN-lists (``IN (?)``) and
    multi-row VALUES (one row kept). Keywords, identifiers (quoted ones
    verbatim), placeholders, TRUE/FALSE/NULL are kept. Returns ``?`` for a
    statement that cannot be tokenized with certainty; never raises.
    """
    try:
        return _obfuscate(statement, _rules(dialect))
    except Exception:  # _Unparseable, or a bug here: never leak, never raise
        return MASK


def _rules(dialect: str) -> _Dialect:
    rules = _DIALECTS.get(dialect)
    if rules is None:
        name = str(dialect).lower()
        rules = _compile(_DIALECT_ALIASES.get(name, name))
        if len(_DIALECTS) < 64:  # bounded, whatever names callers pass
            _DIALECTS[dialect] = rules
    return rules


@functools.cache
def _compile(name: str) -> _Dialect:
    triggers, alternatives = _DIALECT_SPECS.get(name, _DIALECT_SPECS["generic"])
    return _Dialect(
        re.compile(rf"[{_SPACE_TRIGGERS}0-9\-/'\"{re.escape(triggers)}]"),
        re.compile("|".join(alternatives)),
    )


def _obfuscate(statement: str, rules: _Dialect) -> str:
    pieces: list[str] = []
    find_trigger = rules.triggers.search
    match_token = rules.token.match
    done = 0  # statement[:done] is in pieces
    pos = 0
    while (trigger := find_trigger(statement, pos)) is not None:
        start = trigger.start()
        token = match_token(statement, start)
        if token is None:  # a dot, a digit inside a name, a lone dash...
            pos = start + 1
            continue
        kind = token.lastgroup
        gap = statement[done:start]
        if kind == "string" or kind == "estring":
            gap = _without_prefix(gap, _LITERAL_PREFIXES)
        elif kind == "number":
            gap = _without_prefix(gap, _DECIMAL_POINT)  # .5 is found at its 5
        _append_gap(pieces, gap)
        done = pos = token.end()
        if kind == "ws" or kind == "comment" or kind == "block":
            _append_separator(pieces)
        elif kind == "number":
            minus = token.group("minus")
            pieces.append(minus + MASK if minus and not _is_sign(pieces) else MASK)
        elif kind == "ident":
            pieces.append(token.group())
        elif kind == "nested":
            done = pos = _end_of_nested_comment(statement, pos)
            _append_separator(pieces)
        elif kind == "bad":
            raise _Unparseable
        else:  # a string of some kind
            pieces.append(MASK)
    _append_gap(pieces, statement[done:])
    return _collapse_lists("".join(pieces).strip())


def _collapse_lists(text: str) -> str:
    """IN (?, ?, ?) -> IN (?); VALUES (?, ?), (?, ?) -> VALUES (?, ?)."""
    if "(" not in text:
        return text
    upper = text.upper()  # substring checks first: the regexes cost microseconds
    if "IN (" in upper or "IN(" in upper:
        text = _PLACEHOLDER_LIST.sub(_in_list, text)
    if "VALUE" in upper and (")," in text or ") ," in text):
        text = _VALUES_ROWS.sub(r"\1", text)
    return text


def _in_list(placeholders: re.Match[str]) -> str:
    text, start = placeholders.string, placeholders.start()
    head = text[max(start - 4, 0) : start]  # whitespace is collapsed already
    keyword = head.rstrip()
    if keyword[-2:].upper() != "IN" or _is_name_char(keyword[-3:-2]):
        return placeholders.group()  # a function call or a VALUES row
    return "(?)" if head.endswith(" ") else " (?)"


def _is_name_char(char: str) -> bool:
    return char.isalnum() or char in ("_", "$") if char else False


def _append_gap(pieces: list[str], gap: str) -> None:
    """Add plain text (keywords, names, operators) with its space runs collapsed."""
    if gap:
        if "  " in gap:
            gap = _SPACE_RUN.sub(" ", gap)
        if gap[0] == " " and pieces and pieces[-1][-1:] == " ":
            gap = gap[1:]
        pieces.append(gap)


def _without_prefix(gap: str, prefixes: tuple[str, ...]) -> str:
    """``gap`` less a prefix ending it that belongs to the literal after it.

    A prefix counts only at the start of a word: WHERE'x' is WHERE then 'x'.
    """
    for prefix in prefixes:
        if gap.endswith(prefix):
            if not _is_name_char(gap[-len(prefix) - 1 : -len(prefix)]):
                return gap[: -len(prefix)]
    return gap


def _append_separator(pieces: list[str]) -> None:
    """Whitespace and comments separate tokens like one space: a/**/b is a b."""
    if pieces and pieces[-1][-1:] != " ":
        pieces.append(" ")


def _end_of_nested_comment(statement: str, pos: int) -> int:
    """Index after the comment opened just before ``pos`` (and its trailing space)."""
    depth = 1
    while depth:
        delimiter = _COMMENT_DELIMITER.search(statement, pos)
        if delimiter is None:
            raise _Unparseable
        depth += 1 if delimiter.group() == "/*" else -1
        pos = delimiter.end()
    return _TRAILING_WS.match(statement, pos).end()


def _is_sign(pieces: list[str]) -> bool:
    """Whether a minus right after ``pieces`` is a sign (-3) or a subtraction (a-3)."""
    before = "".join(pieces[-3:]).rstrip()
    if not before:
        return True
    if before[-1] in _SIGN_AFTER_CHARS:
        return True
    word = _LAST_WORD.search(before)
    return word is not None and word.group().upper() in _SIGN_AFTER_WORDS


# --------------------------------------------------------------------------
# Signature: "SELECT users", "INSERT orders", "CREATE TABLE t", "COMMIT".

# Words, quoted identifiers and the punctuation that shapes a statement;
# operators, placeholders and masks are skipped.
_SIGNATURE_TOKEN = re.compile(
    r'[^\W\d][\w$]*|[().,;]|"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]'
)
_SIGNATURE_SCAN_LIMIT = 4000  # chars; past this a statement is named by its verb alone
_NAME_LIMIT = 128
_LEADING_WORD = re.compile(r"\s*([A-Za-z]+)\b")
_KNOWN_VERBS = frozenset(
    "SELECT INSERT UPDATE DELETE MERGE REPLACE UPSERT CALL EXEC EXECUTE WITH VALUES "
    "TABLE BEGIN START COMMIT ROLLBACK SAVEPOINT RELEASE END ABORT CREATE DROP "
    "ALTER TRUNCATE RENAME GRANT REVOKE SET SHOW DESCRIBE DESC EXPLAIN ANALYZE "
    "VACUUM PRAGMA LOCK UNLOCK COPY USE DECLARE FETCH CLOSE MOVE PREPARE "
    "DEALLOCATE LISTEN NOTIFY UNLISTEN REINDEX CLUSTER COMMENT DO LOAD HANDLER "
    "OPTIMIZE REPAIR CHECKPOINT REFRESH DISCARD RESET ATTACH DETACH".split()
)
_MAIN_VERBS = frozenset("SELECT INSERT UPDATE DELETE MERGE VALUES TABLE".split())
_INSERT_VERBS = frozenset("INSERT REPLACE MERGE UPSERT".split())
_NAMED_VERBS = frozenset("UPDATE TRUNCATE CALL EXEC EXECUTE COPY".split())  # VERB name
_DDL_VERBS = frozenset("CREATE DROP ALTER".split())
_DML_MODIFIERS = frozenset(
    "LOW_PRIORITY HIGH_PRIORITY DELAYED IGNORE QUICK ONLY LATERAL INTO TABLE".split()
)
_DDL_MODIFIERS = frozenset(
    "OR REPLACE TEMPORARY TEMP UNIQUE UNLOGGED GLOBAL LOCAL MATERIALIZED".split()
)
_NAME_MODIFIERS = frozenset("IF NOT EXISTS CONCURRENTLY ONLY".split())
_PUNCTUATION = frozenset("().,;")


def _signature(text: str) -> tuple[str, str]:
    """(operation, signature) of an obfuscated statement."""
    tokens = _SIGNATURE_TOKEN.findall(text[:_SIGNATURE_SCAN_LIMIT])
    operation, target = _statement_at(tokens, 0)
    return operation, f"{operation} {target}" if target else operation


def _statement_at(tokens: list[str], i: int) -> tuple[str, str]:
    """(verb, target) of the statement starting at ``tokens[i]``."""
    while i < len(tokens) and tokens[i] == "(":
        i += 1
    if i >= len(tokens) or not _is_word(tokens[i]):
        return "", ""
    verb = tokens[i].upper()
    if verb == "WITH":
        main = _main_statement_of_with(tokens, i + 1)
        return _statement_at(tokens, main) if main is not None else (verb, "")
    if verb in ("SELECT", "DELETE"):
        return verb, _name_at(tokens, _after_top_level(tokens, i + 1, "FROM"))
    if verb in _INSERT_VERBS:
        into = _after_top_level(tokens, i + 1, "INTO")
        return verb, _name_at(tokens, i + 1 if into is None else into)
    if verb in _NAMED_VERBS:
        return verb, _name_at(tokens, i + 1)
    if verb in _DDL_VERBS:
        return verb, _ddl_target(tokens, i + 1)
    return verb, ""


def _main_statement_of_with(tokens: list[str], i: int) -> int | None:
    """Index of the statement after the CTEs: the first verb at depth 0."""
    for j, token in _top_level(tokens, i):
        if token.upper() in _MAIN_VERBS:
            return j
    return None


def _after_top_level(tokens: list[str], i: int, keyword: str) -> int | None:
    """Index after ``keyword`` at this statement's own nesting level."""
    for j, token in _top_level(tokens, i):
        if token == ";":
            return None
        if len(token) == len(keyword) and token.upper() == keyword:
            return j + 1
    return None


def _top_level(tokens: list[str], i: int):
    """(index, token) of each token from ``i`` on at the nesting level of ``tokens[i]``, up
    to the end of the subquery it lies in."""
    depth = 0
    for j in range(i, len(tokens)):
        token = tokens[j]
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
            if depth < 0:  # end of the subquery this statement lives in
                return
        elif depth == 0:
            yield j, token


def _name_at(tokens: list[str], i: int | None) -> str:
    """The (possibly dotted, unquoted) name at ``tokens[i]``; a subquery's target."""
    if i is None:
        return ""
    while i < len(tokens) and tokens[i].upper() in _DML_MODIFIERS:
        i += 1
    if i >= len(tokens):
        return ""
    if tokens[i] == "(":
        return _statement_at(tokens, i)[1]
    if tokens[i] in _PUNCTUATION:
        return ""
    parts = [_unquote(tokens[i])]
    while i + 2 < len(tokens) and tokens[i + 1] == "." and tokens[i + 2] not in _PUNCTUATION:
        parts.append(_unquote(tokens[i + 2]))
        i += 2
    return ".".join(parts)[:_NAME_LIMIT]


def _ddl_target(tokens: list[str], i: int) -> str:
    """'TABLE users' for CREATE TEMPORARY TABLE IF NOT EXISTS users (...)."""
    while i < len(tokens) and tokens[i].upper() in _DDL_MODIFIERS:
        i += 1
    if i >= len(tokens) or not _is_word(tokens[i]):
        return ""
    kind = tokens[i].upper()
    i += 1
    while i < len(tokens) and tokens[i].upper() in _NAME_MODIFIERS:
        i += 1
    name = _name_at(tokens, i) if i < len(tokens) and tokens[i].upper() != "ON" else ""
    return f"{kind} {name}" if name else kind


def _is_word(token: str) -> bool:
    return token[0] not in '"`[().,;'


def _unquote(token: str) -> str:
    first = token[0]
    if first == "[":
        return token[1:-1]
    if first in '"`':
        return token[1:-1].replace(first * 2, first)
    return token


def _leading_verb(statement: str) -> str:
    """The statement's first word, if it is a known SQL verb (and so no secret)."""
    match = _LEADING_WORD.match(statement)
    verb = match.group(1).upper() if match else ""
    return verb if verb in _KNOWN_VERBS else ""


# --------------------------------------------------------------------------
# normalize: all of the above, cached.


class Normalized(NamedTuple):
    text: str  # obfuscated statement, truncated to max_length
    operation: str  # 'SELECT'
    signature: str  # 'SELECT users'
    hash: str  # stable grouping key of the (untruncated) obfuscated text


# (statement, dialect, max_length) -> Normalized. Plain dict: lookups and
# inserts are atomic under the GIL, so the hit path needs no lock. Insertion
# order makes eviction first-in-first-out.
_cache: dict[tuple[object, str, int], Normalized] = {}


def normalize(
    statement: str | bytes, dialect: str = "generic", max_length: int = 2048
) -> Normalized:
    """Obfuscated text, operation, signature and grouping hash of ``statement``.

    Cached by (statement, dialect, max_length) in a bounded cache. Text longer
    than ``max_length`` is truncated with a trailing '…'. Never raises.
    """
    key = (statement, dialect, max_length)
    try:
        return _cache[key]
    except Exception:  # a miss (KeyError), or an unhashable statement
        return _normalize_and_remember(key)


def _normalize_and_remember(key: tuple[object, str, int]) -> Normalized:
    statement, dialect, max_length = key
    try:
        result = _normalize(statement, dialect, max_length)
    except Exception:
        return _masked()
    try:
        while len(_cache) >= CACHE_SIZE:
            _cache.pop(next(iter(_cache)), None)
        _cache[key] = result
    except Exception:  # another thread changed the cache mid-eviction; skip caching
        pass
    return result


def _normalize(statement: str | bytes, dialect: str, max_length: int) -> Normalized:
    if isinstance(statement, (bytes, bytearray, memoryview)):
        statement = bytes(statement).decode("utf-8", errors="replace")
    elif not isinstance(statement, str):
        statement = str(statement)
    text = obfuscate(statement, dialect)
    if text == MASK:
        operation = signature = _leading_verb(statement)
    else:
        operation, signature = _signature(text)
    return Normalized(_truncate(text, max_length), operation, signature, _hash(text))


def _truncate(text: str, max_length: int) -> str:
    if len(text) <= max_length:
        return text
    return text[: max(max_length - 1, 0)] + ELLIPSIS


def _hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", errors="replace"), digest_size=8).hexdigest()


def _masked() -> Normalized:
    return Normalized(MASK, "", "", _hash(MASK))
