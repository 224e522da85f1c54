"""Solr (Lucene) query obfuscation: every term a ``?``, field names and operators kept, as
SQL literals are masked. pysolr's instrumentation sends only what comes out of here."""
import re

# A Lucene/Solr query's tokens: a quoted phrase (maybe unterminated), or a run of anything
# but whitespace, quotes and brackets. Brackets and whitespace are kept as they are.
_QUERY_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[^\s()\[\]{}"]+')
_KEPT_TOKENS = frozenset(("AND", "OR", "NOT", "TO", "&&", "||", "*", "*:*"))
_FIELD = re.compile(r"[+\-!]*[A-Za-z_][\w.]*:")  # +title: -owner: !status:


def obfuscate_query(query):
    """A Solr query with its terms as ``?``: ``title:spyglass AND owner:"Ann Lee"`` ->
    ``title:? AND owner:?``. Field names, operators, brackets and ``*:*`` are kept."""
    return _QUERY_TOKEN.sub(_obfuscate_token, query)


def _obfuscate_token(match):
    token = match.group(0)
    if token in _KEPT_TOKENS:
        return token
    field = _FIELD.match(token)
    if field is None:
        prefix = token[:len(token) - len(token.lstrip("+-!"))]
        return prefix + "?" if prefix != token else token
    rest = token[field.end():]
    return field.group(0) + ("?" if rest and rest != "*" else rest)
