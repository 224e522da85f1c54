"""spyglass.redact.sql: obfuscation, signatures, grouping hash, cache."""

import re
import string
import threading

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from spyglass.redact import sql
from spyglass.redact.sql import Normalized, normalize, obfuscate

# (dialect, statement, expected obfuscated text)
HOSTILE = [
    # comments and literals inside each other
    ("generic", "SELECT * FROM t WHERE a = 'x' -- it's 42\nAND b = 7",
     "SELECT * FROM t WHERE a = ? AND b = ?"),
    ("generic", "SELECT '-- not a comment', 'a /* b */ c' FROM t", "SELECT ?, ? FROM t"),
    ("generic", "SELECT a /* 'secret' 42 */ FROM t", "SELECT a FROM t"),
    ("generic", "SELECT a/**/FROM t", "SELECT a FROM t"),
    ("generic", "-- leading 1\n/* and 2 */ SELECT 1", "SELECT ?"),
    # quoted identifiers are kept verbatim, quotes and all
    ("generic", 'SELECT "we\'ird -- col", "x""1" FROM "Tab 1"',
     'SELECT "we\'ird -- col", "x""1" FROM "Tab 1"'),
    ("generic", "SELECT 'it''s', '''', '' FROM t", "SELECT ?, ?, ? FROM t"),
    # numbers
    ("generic", "SELECT 1e-5, .5, -3, 0xFF, 1.5E+10, 42., 0b101, 1_000 FROM t",
     "SELECT ?, ?, ?, ?, ?, ?, ?, ? FROM t"),
    ("generic", "SELECT a-3, a - 3, (-3), x*-3, CASE WHEN a THEN -1 ELSE -2 END FROM t",
     "SELECT a-?, a - ?, (?), x*?, CASE WHEN a THEN ? ELSE ? END FROM t"),
    ("generic", "SELECT x FROM t WHERE a = - 7 AND b BETWEEN -1 AND -.5",
     "SELECT x FROM t WHERE a = ? AND b BETWEEN ? AND ?"),
    ("generic", "SELECT table1.col_2, t2.x3 FROM schema1.table1 t2",
     "SELECT table1.col_2, t2.x3 FROM schema1.table1 t2"),
    ("generic", "SELECT TRUE, FALSE, NULL, true FROM t WHERE x IS NOT NULL",
     "SELECT TRUE, FALSE, NULL, true FROM t WHERE x IS NOT NULL"),
    # IN-lists and VALUES
    ("generic", "SELECT * FROM t WHERE id IN (\n  1,\n  2 , 3\n)",
     "SELECT * FROM t WHERE id IN (?)"),
    ("generic", "SELECT * FROM t WHERE id in(%s,%s) OR id NOT IN ( $1 , $2 ) "
     "OR c IN (:a, :b) OR d IN (%(x)s, %(y)s) OR e IN ('a', -1)",
     "SELECT * FROM t WHERE id in (?) OR id NOT IN (?) OR c IN (?) OR d IN (?) OR e IN (?)"),
    ("generic", "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE v = 1)",
     "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE v = ?)"),
    ("generic", "SELECT f(1, 2), login(?, ?) FROM t", "SELECT f(?, ?), login(?, ?) FROM t"),
    ("generic", "INSERT INTO t (a, b) VALUES (1, 'a'), (2, 'b'),\n (3, 'c')",
     "INSERT INTO t (a, b) VALUES (?, ?)"),
    ("generic", "INSERT INTO t VALUES (now(), 1), (now(), 2)", "INSERT INTO t VALUES (now(), ?)"),
    # placeholders are kept as they are
    ("generic", "SELECT g(?) FROM t WHERE x = ? AND y = %s AND z = :name AND w = %(w)s",
     "SELECT g(?) FROM t WHERE x = ? AND y = %s AND z = :name AND w = %(w)s"),
    # whitespace
    ("generic", "SELECT  a,\t\tb\r\n  FROM   t  /* c */  WHERE x=1;", "SELECT a, b FROM t WHERE x=?;"),
    ("generic", "SELECT\u00a0a\u2028FROM\u3000t", "SELECT a FROM t"),
    ("generic", "   \n\t  ", ""),
    ("generic", "", ""),
    # unicode and prefixed literals
    ("generic", "SELECT 'caf\u00e9', '\U0001f600', \"\u0442\u0430\u0431\" FROM t",
     "SELECT ?, ?, \"\u0442\u0430\u0431\" FROM t"),
    ("generic", "SELECT N'x', X'ff', B'01', U&'d\\0061t' FROM t", "SELECT ?, ?, ?, ? FROM t"),
    ("generic", "SELECT WHERE'x'", "SELECT WHERE?"),
    # standard SQL nests block comments
    ("generic", "SELECT /* 1 /* 2 */ 3 */ 4", "SELECT ?"),
    # anything unterminated masks everything
    ("generic", "SELECT 'unterminated", "?"),
    ("generic", "SELECT x FROM t WHERE a = 'b''", "?"),
    ("generic", 'SELECT "unterminated', "?"),
    ("generic", "SELECT /* unterminated 42", "?"),
    ("generic", "SELECT /* 1 /* 2 */ secret", "?"),
    # PostgreSQL
    ("postgresql", "SELECT $tag$ it's -- $x$ $tag$, $$a$$, $a$$b$a$, $_1$x$_1$ FROM t",
     "SELECT ?, ?, ?, ? FROM t"),
    ("postgresql", "SELECT $q$ secret", "?"),
    ("postgresql", "SELECT $$ secret $", "?"),
    ("postgresql", "SELECT E'it\\'s', e'a\\\\', E'x''y' FROM t", "SELECT ?, ?, ? FROM t"),
    ("postgresql", "SELECT E'it\\'s", "?"),
    # standard_conforming_strings: a backslash is just a character
    ("postgresql", "SELECT 'a\\', 'secret'", "SELECT ?, ?"),
    ("postgresql", "SELECT $1, $2::int, x::text, arr[1:2], a$b$c FROM t WHERE y = $3",
     "SELECT $1, $2::int, x::text, arr[?:?], a$b$c FROM t WHERE y = $3"),
    ("postgresql", "SELECT /* a /* b */ secret */ 1", "SELECT ?"),
    ("postgresql", "SELECT /* a /* b */ secret 1", "?"),
    ("postgresql", 'SELECT "My""Col" FROM "Public"."Users"', 'SELECT "My""Col" FROM "Public"."Users"'),
    # MySQL: double quotes are strings, backslashes escape, # comments, no nesting
    ("mysql", "SELECT \"secret\", 'it\\'s', 'a\\\\', 'x''y', \"q\\\"q\", `col1`, `we``ird` "
     "FROM `db`.`t`",
     "SELECT ?, ?, ?, ?, ?, `col1`, `we``ird` FROM `db`.`t`"),
    ("mysql", "SELECT 1 # comment 42\nFROM t", "SELECT ? FROM t"),
    ("mysql", "SELECT 1--1, 2 -- 3\nFROM t", "SELECT ?-?, ? FROM t"),
    ("mysql", "SELECT _utf8mb4'x', x'ff', 0x1F, b'01' FROM t", "SELECT _utf8mb4?, ?, ?, ? FROM t"),
    ("mysql", "SELECT /* a /* b */ c */ 1", "SELECT c */ ?"),
    ("mysql", "SELECT 'a\\'", "?"),
    ("mysql", 'SELECT "a', "?"),
    ("mysql", "SELECT `unterminated", "?"),
    ("mysql", "INSERT INTO t (a) VALUES (1),(2),(3) ON DUPLICATE KEY UPDATE a = VALUES(a)",
     "INSERT INTO t (a) VALUES (?) ON DUPLICATE KEY UPDATE a = VALUES(a)"),
    # SQLite
    ("sqlite", "SELECT [col 1], `c2`, \"c3\" FROM [my table] WHERE a = ?1 AND b = :x AND c = x'ff'",
     "SELECT [col 1], `c2`, \"c3\" FROM [my table] WHERE a = ?1 AND b = :x AND c = ?"),
    ("sqlite", "SELECT [unterminated", "?"),
    ("sqlite", "SELECT 1 /* unterminated", "?"),
]


@pytest.mark.parametrize(("dialect", "statement", "expected"), HOSTILE)
def test_obfuscate_hostile_statements(dialect, statement, expected):
    assert obfuscate(statement, dialect) == expected


@pytest.mark.parametrize("dialect", ["generic", "postgresql", "mysql", "sqlite"])
def test_very_long_statement_is_obfuscated_whole_then_truncated(dialect):
    statement = "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE " + " OR ".join(
        f"c{i} = {i} AND d = 'secret{i}'" for i in range(2000)
    ) + ")"
    result = normalize(statement, dialect, max_length=300)
    assert len(result.text) == 300
    assert result.text.endswith("\u2026")
    assert result.text.startswith("SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE c0 = ? AND d = ? OR")
    full = obfuscate(statement, dialect)
    assert "secret" not in full and not re.search(r"= \d", full)
    assert result.hash == sql._hash(full)  # grouped by the whole text, not the cut one
    assert result.signature == "SELECT t"


def test_unknown_dialect_falls_back_to_standard_sql():
    assert obfuscate("SELECT 'a', \"b\" FROM t", "oracle") == 'SELECT ?, "b" FROM t'
    assert obfuscate("SELECT \"b\" FROM t", "MariaDB") == "SELECT ? FROM t"


@pytest.mark.parametrize("junk", [None, 42, ["SELECT 1"], b"SELECT 1"])
def test_obfuscate_never_raises(junk):
    assert obfuscate(junk) == "?"


# (dialect, statement, operation, signature)
SIGNATURES = [
    ("generic", "SELECT * FROM users WHERE id = 1", "SELECT", "SELECT users"),
    ("generic", "select * from users u join orders o on o.uid = u.id", "SELECT", "SELECT users"),
    ("generic", "SELECT a FROM b, c", "SELECT", "SELECT b"),
    ("generic", "SELECT * FROM users WHERE id IN (SELECT uid FROM orders)", "SELECT", "SELECT users"),
    ("generic", "SELECT * FROM (SELECT * FROM inner_t) AS x", "SELECT", "SELECT inner_t"),
    ("generic", "SELECT EXTRACT(YEAR FROM ts), SUBSTRING(s FROM 2) FROM events", "SELECT",
     "SELECT events"),
    ("generic", "(SELECT a FROM t1) UNION (SELECT a FROM t2)", "SELECT", "SELECT t1"),
    ("generic", "SELECT 1", "SELECT", "SELECT"),
    ("postgresql", 'SELECT * FROM "public"."Users"', "SELECT", "SELECT public.Users"),
    ("postgresql", "SELECT * FROM public.users", "SELECT", "SELECT public.users"),
    ("postgresql", "SELECT * FROM ONLY parent", "SELECT", "SELECT parent"),
    ("mysql", "SELECT * FROM `shop`.`order items`", "SELECT", "SELECT shop.order items"),
    ("sqlite", "SELECT * FROM [my table]", "SELECT", "SELECT my table"),
    ("generic", "INSERT INTO orders (a) VALUES (1)", "INSERT", "INSERT orders"),
    ("mysql", "INSERT IGNORE INTO orders SET a = 1", "INSERT", "INSERT orders"),
    ("mysql", "REPLACE INTO kv VALUES (1, 2)", "REPLACE", "REPLACE kv"),
    ("generic", "INSERT INTO archive SELECT * FROM orders", "INSERT", "INSERT archive"),
    ("generic", "UPDATE accounts SET balance = balance - 5", "UPDATE", "UPDATE accounts"),
    ("mysql", "UPDATE LOW_PRIORITY IGNORE accounts SET a = 1", "UPDATE", "UPDATE accounts"),
    ("generic", "DELETE FROM sessions WHERE expires < 5", "DELETE", "DELETE sessions"),
    ("generic", "MERGE INTO target USING src ON 1 = 1", "MERGE", "MERGE target"),
    ("generic", "CALL proc_name(1, 'a')", "CALL", "CALL proc_name"),
    ("generic", "BEGIN", "BEGIN", "BEGIN"),
    ("generic", "commit", "COMMIT", "COMMIT"),
    ("generic", "SET search_path TO app", "SET", "SET"),
    ("generic", "CREATE TABLE t (id int)", "CREATE", "CREATE TABLE t"),
    ("generic", "CREATE TEMPORARY TABLE IF NOT EXISTS s.t (id int)", "CREATE", "CREATE TABLE s.t"),
    ("postgresql", "CREATE UNIQUE INDEX CONCURRENTLY idx ON t (a)", "CREATE", "CREATE INDEX idx"),
    ("postgresql", "CREATE INDEX ON t (a)", "CREATE", "CREATE INDEX"),
    ("generic", "CREATE OR REPLACE VIEW v AS SELECT 1", "CREATE", "CREATE VIEW v"),
    ("generic", "DROP TABLE IF EXISTS old_t", "DROP", "DROP TABLE old_t"),
    ("postgresql", "ALTER TABLE ONLY t ADD COLUMN c int", "ALTER", "ALTER TABLE t"),
    ("generic", "TRUNCATE TABLE logs", "TRUNCATE", "TRUNCATE logs"),
    ("postgresql", "COPY public.events (a, b) FROM STDIN", "COPY", "COPY public.events"),
    ("postgresql", "COPY (SELECT a FROM events WHERE b = $1) TO STDOUT", "COPY", "COPY events"),
    ("generic", "WITH recent AS (SELECT * FROM orders WHERE d > 1) SELECT * FROM recent r "
     "JOIN users u ON u.id = r.uid", "SELECT", "SELECT recent"),
    ("postgresql", "WITH RECURSIVE a(n) AS (SELECT 1 UNION SELECT n + 1 FROM a), "
     "b AS (SELECT 2) INSERT INTO totals SELECT * FROM a", "INSERT", "INSERT totals"),
    ("generic", "  /* hint */ -- note\n  select 1", "SELECT", "SELECT"),
    ("generic", "SELECT 'unterminated FROM users", "SELECT", "SELECT"),
    ("generic", "'secret' unterminated '", "", ""),
    ("generic", "", "", ""),
    ("generic", "SELECT " + ", ".join(f"c{i}" for i in range(2000)) + " FROM far_away",
     "SELECT", "SELECT"),
]


@pytest.mark.parametrize(("dialect", "statement", "operation", "signature"), SIGNATURES)
def test_operation_and_signature(dialect, statement, operation, signature):
    result = normalize(statement, dialect)
    assert (result.operation, result.signature) == (operation, signature)


def test_normalize_result():
    result = normalize("SELECT * FROM users WHERE id = 7", "postgresql")
    assert isinstance(result, Normalized)
    assert result.text == "SELECT * FROM users WHERE id = ?"
    assert re.fullmatch(r"[0-9a-f]{16}", result.hash)
    # statements differing only in literals group together
    assert normalize("SELECT * FROM users WHERE id = 8", "postgresql").hash == result.hash
    assert normalize("SELECT * FROM users WHERE id = 'x'", "postgresql").hash == result.hash
    assert normalize("SELECT * FROM orders WHERE id = 7", "postgresql").hash != result.hash


def test_hash_is_stable_across_processes():
    # blake2b of the text, not Python's salted hash(): the same in every run
    assert normalize("SELECT 1").hash == "c148796e1220075a"


def test_bytes_are_decoded_as_utf8_with_replacement():
    result = normalize(b"SELECT * FROM t WHERE name = 'caf\xc3\xa9' AND x = '\xff'")
    assert result.text == "SELECT * FROM t WHERE name = ? AND x = ?"
    assert normalize(b"SELECT \xff FROM t").text == "SELECT \ufffd FROM t"


@pytest.mark.parametrize("junk", [None, 3.5, ["SELECT 1"], bytearray(b"SELECT 1")])
def test_normalize_never_raises(junk):
    result = normalize(junk)
    assert isinstance(result, Normalized)
    assert "1" not in result.text


def test_cache_returns_the_same_object_and_stays_bounded(monkeypatch):
    monkeypatch.setattr(sql, "CACHE_SIZE", 10)
    monkeypatch.setattr(sql, "_cache", {})
    first = normalize("SELECT * FROM t WHERE a = 1")
    assert normalize("SELECT * FROM t WHERE a = 1") is first
    for i in range(50):
        normalize(f"SELECT * FROM t{i} WHERE a = 1")
    assert len(sql._cache) == 10
    # first in, first out: the oldest entries went first
    assert ("SELECT * FROM t49 WHERE a = 1", "generic", 2048) in sql._cache
    assert ("SELECT * FROM t WHERE a = 1", "generic", 2048) not in sql._cache
    # dialect and max_length are part of the key
    assert normalize('SELECT "a"', "mysql").text == "SELECT ?"
    assert normalize('SELECT "a"', "postgresql").text == 'SELECT "a"'
    assert normalize("SELECT abcdef", max_length=5).text == "SELEC"[:4] + "\u2026"


def test_cache_is_safe_to_use_from_many_threads(monkeypatch):
    monkeypatch.setattr(sql, "CACHE_SIZE", 64)
    monkeypatch.setattr(sql, "_cache", {})
    errors = []

    def work(offset):
        try:
            for i in range(2000):
                n = (i * 7 + offset) % 300
                assert normalize(f"SELECT * FROM t{n} WHERE a = {n}").signature == f"SELECT t{n}"
        except Exception as error:  # reported below, with the thread's failure
            errors.append(error)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(sql._cache) <= 64 + len(threads)


# ---------------------------------------------------------------- properties

DIALECTS = ["generic", "postgresql", "mysql", "sqlite"]

# No digits or quotes of their own, so any digit or secret in the output
# could only have come from the literal.
TEMPLATES = [
    "SELECT * FROM users WHERE email = {0}",
    "SELECT a, {0} AS b FROM t WHERE c = {0} AND d IN ({0}, {0}, {0})",
    "select x from t where y = {0} -- trailing {0}\nand z <> {0}",
    "INSERT INTO t (a, b) VALUES ({0}, {0}), ({0}, {0})",
    "UPDATE accounts SET balance = {0}, note = {0} WHERE id = {0}",
    "DELETE FROM s WHERE k BETWEEN {0} AND {0} OR k = ABS({0})",
    "SELECT CASE WHEN a = {0} THEN {0} ELSE {0} END FROM t /* {0} */",
    "CALL proc({0}, {0})",
    "SELECT f(x,{0}),{0}||{0} FROM t WHERE x>{0} AND x<={0}",
]

secret_text = st.text(min_size=0, max_size=40).map(lambda s: "Zq9" + s)


def standard_string(text):
    return "'" + text.replace("'", "''") + "'"


def backslash_string(text, quote="'"):
    return quote + text.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


def dollar_string(text, tag):
    delimiter = f"${tag}$"
    assume(delimiter not in text + "$")
    return delimiter + text + delimiter


def string_literals(dialect):
    prefixes = ["", "N", "X", "B", "n", "x", "b"]
    if dialect == "mysql":
        return st.one_of(
            st.builds(lambda p, s: p + backslash_string(s), st.sampled_from(prefixes), secret_text),
            st.builds(lambda s: backslash_string(s, '"'), secret_text),
        )
    if dialect == "postgresql":
        prefixes += ["U&", "u&"]
    standard = st.builds(lambda p, s: p + standard_string(s), st.sampled_from(prefixes), secret_text)
    if dialect != "postgresql":
        return standard
    return st.one_of(
        standard,
        st.builds(lambda e, s: e + backslash_string(s), st.sampled_from("Ee"), secret_text),
        st.builds(dollar_string, secret_text,
                  st.from_regex(r"\A(?:[A-Za-z_][A-Za-z_0-9]{0,5})?\Z")),
    )


numbers = st.one_of(
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f"{f:e}"),
    st.integers(min_value=0).map(hex),
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
    st.integers(min_value=0, max_value=10**6).map(lambda i: f".{i}"),
).map(str)


@settings(max_examples=300, deadline=None)
@given(dialect=st.sampled_from(DIALECTS), template=st.sampled_from(TEMPLATES), data=st.data())
def test_string_literals_never_leak(dialect, template, data):
    literal = data.draw(string_literals(dialect))
    output = obfuscate(template.format(literal), dialect)
    assert "Zq9" not in output
    # stronger: the output does not depend on the literal at all...
    expected = obfuscate(template.format("'x'"), dialect)
    if "--" in template or "/*" in template:
        # ...except that a quote, newline or */ inside a comment may cut
        # the comment short, leaving an unmatched quote: all masked then
        assert output in (expected, "?")
    else:
        assert output == expected


@settings(max_examples=300, deadline=None)
@given(dialect=st.sampled_from(DIALECTS), template=st.sampled_from(TEMPLATES), number=numbers)
def test_numeric_literals_never_leak(dialect, template, number):
    output = obfuscate(template.format(number), dialect)
    assert not re.search(r"\d", output)
    assert output == obfuscate(template.format("0"), dialect)


@settings(max_examples=500, deadline=None)
@given(dialect=st.sampled_from(DIALECTS), statement=st.text(alphabet=string.printable + "é€$`[]"))
def test_arbitrary_text_never_raises_and_never_keeps_a_string_quote(dialect, statement):
    output = obfuscate(statement, dialect)
    assert isinstance(output, str)
    string_quotes = "'\"" if dialect == "mysql" else "'"
    quote_free = re.sub(r'"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]', "", output)
    assert not any(quote in quote_free for quote in string_quotes)
