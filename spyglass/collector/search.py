"""Trace search and log search: the filters ``/api/traces`` and ``/api/logs`` add to the
shared queries (``queries``), in SQL both SQLite and PostgreSQL run.

Attributes are stored as JSON text, written by one encoder (``model.dumps``: no spaces,
non-ASCII as it is). A ``key=value`` filter is therefore a search for the text that
encoder writes for that pair, ``"key":"value"`` (or ``"key":42``, ``"key":true`` for a
value that reads as a number or a boolean), inside the JSON: exact, case-sensitive, and
no quote inside a stored string can fake it (the encoder escapes them). A trace matches
when any of its spans, the request's own or any call below it, carries the pair: the
filter probes each candidate request's spans through the ``(trace_id, span_id)`` index,
newest request first, and stops at ``limit`` matches.
"""
import re

from .model import INT64_MAX, SPAN_COLUMNS, dumps

#: Severity numbers of the level names (OpenTelemetry's): each level covers four numbers.
LEVELS = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "warning": 13, "error": 17, "fatal": 21, "critical": 21}
#: ``span_tags``: each trace's top-level scalar attributes as ``key=value`` texts up to this
#: long, the index attribute search looks up first (longer pairs are searched in the spans).
MAX_TAG_CHARS = 200
TAG_COLUMNS = ("tag", "trace_id", "time_ns")
_TRACE_AT, _START_AT = SPAN_COLUMNS.index("trace_id"), SPAN_COLUMNS.index("start_ns")
#: A tag on at most this many spans in the window is looked up; one on more, probed for.
RARE_TAG_TRACES = 2000
#: Traces a trace id prefix selects at most.
MAX_PREFIX_MATCHES = 1000
#: How far outside the searched window a request's calls may have started.
MEMBER_MARGIN_NS = 3600 * 1_000_000_000
_HEX = re.compile(r"[0-9a-f]{1,32}")
#: Log records of its window a search by text or logger reads at most, newest first: a search
#: that matches few ends there, and says where (``log_search_edge``), so that the next page
#: goes on from it.
LOG_SCAN_BUDGET = 10_000


def attribute_needles(key, value):
    """The texts that the stored JSON of ``{key: value}`` contains, for each type the value
    may have been sent as; each ends where the pair ends (``,`` or ``}``)."""
    forms = [dumps(value)]
    literal = value.strip()
    if literal in ("true", "false") or re.fullmatch(r"-?(0|[1-9][0-9]{0,18})(\.[0-9]+)?([eE][-+]?[0-9]+)?", literal):
        forms.append(literal)
    prefix = dumps(str(key)) + ":"
    return [prefix + form + end for form in forms for end in (",", "}")]


def add_tags(batch, row, attributes):
    """Add to ``batch.tags`` (rows of ``TAG_COLUMNS``) the span ``row``'s ``key=value``
    pairs of scalar ``attributes`` (as decoded), each once per trace and batch."""
    trace_id, start_ns = row[_TRACE_AT], row[_START_AT]
    seen = batch.tagged
    for key, value in attributes.items():
        if value is None or isinstance(value, (dict, list)):
            continue
        tag = _tag(key, value)
        if len(tag) > MAX_TAG_CHARS or (trace_id, tag) in seen or "\0" in tag or not _encodable(tag):
            continue
        seen.add((trace_id, tag))
        batch.tags.append((tag, trace_id, start_ns))


def _tag(key, value):
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"{key}={value}"


def _encodable(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no index takes it
        return False
    return True


def searched_tags(key, value):
    """The ``span_tags`` texts that a search for ``key=value`` matches: as typed, and a
    number as Python writes it back (``1e3`` is stored as ``1000.0``)."""
    tags = {_tag(key, value)}
    if re.fullmatch(r"-?[0-9]{1,18}", value):
        tags.add(_tag(key, int(value)))
    elif re.fullmatch(r"-?[0-9.]+([eE][-+]?[0-9]+)?", value):
        try:
            tags.add(_tag(key, float(value)))
        except ValueError:
            pass
    return sorted(tags)


def hex_prefix_range(prefix):
    """``(low, high)``: the ids that start with ``prefix`` (lowercase hex) sort in
    ``low <= id < high``, so the primary-key index finds them."""
    return prefix, prefix + "g"


class SearchQueries:
    """The search filters, mixed into ``queries.Queries``: over ``self._rows``, and
    ``self.CONTAINS``, the SQL that tests whether a text column contains a parameter."""

    #: SQLite's; PostgreSQL's store says ``strpos({column}, ?) > 0``.
    CONTAINS = "instr({column}, ?) > 0"

    def _contains_any(self, column, needles, parameters):
        parameters += needles
        return "(" + " OR ".join(self.CONTAINS.format(column=column) for _ in needles) + ")"

    def search_clauses(self, clauses, parameters, since_ns, until_ns=None, max_duration_ns=None, attribute=None,
                       trace_id=None):
        """Add to a query of requests (root spans) started from ``since_ns`` to ``until_ns``:
        a longest duration, an attribute ``(key, value)`` on any span of the trace, a trace
        id prefix. A trace's spans are looked for within an hour of the window (the
        PostgreSQL store then reads only those hours' partitions)."""
        if max_duration_ns is not None:
            clauses.append("duration_ns <= ?")
            parameters.append(int(max_duration_ns))
        if trace_id:  # the ids first, from the index of ids: the planner cannot tell a prefix is narrow
            ids = self.trace_ids(trace_id, limit=MAX_PREFIX_MATCHES) or [""]
            clauses.append(f"trace_id IN ({', '.join('?' * len(ids))})")
            parameters += ids
        if attribute:
            window = [since_ns - MEMBER_MARGIN_NS, (until_ns or INT64_MAX - MEMBER_MARGIN_NS) + MEMBER_MARGIN_NS]
            tags = searched_tags(*attribute)
            if max(map(len, tags)) <= MAX_TAG_CHARS:
                clauses.append(self._tagged(tags, window, parameters))
            else:  # not in the index: the spans themselves
                parameters += window
                member = self._contains_any("member.attributes", attribute_needles(*attribute), parameters)
                clauses.append(f"EXISTS (SELECT 1 FROM spans AS member WHERE member.trace_id = spans.trace_id "
                               f"AND member.start_ns BETWEEN ? AND ? AND {member})")

    def _tagged(self, tags, window, parameters):
        """The clause for traces with one of ``tags`` in ``window``. A rare tag's traces are
        looked up (their ids, from the tag's index by time); a common one is probed for,
        request by request, newest first, where matches come soon."""
        marks = ", ".join("?" * len(tags))
        rows = self._rows(f"SELECT trace_id FROM span_tags WHERE tag IN ({marks}) AND time_ns BETWEEN ? AND ? "
                          f"LIMIT {RARE_TAG_TRACES + 1}", [*tags, *window])
        if len(rows) <= RARE_TAG_TRACES:
            ids = sorted({row["trace_id"] for row in rows}) or [""]
            parameters += ids
            return f"trace_id IN ({', '.join('?' * len(ids))})"
        parameters += tags
        return f"EXISTS (SELECT 1 FROM span_tags AS t WHERE t.tag IN ({marks}) AND t.trace_id = spans.trace_id)"

    def trace_ids(self, prefix, limit=2):
        """The ids of the stored traces that start with ``prefix`` (hex), at most ``limit``."""
        prefix = prefix.lower()
        if not _HEX.fullmatch(prefix):
            return []
        rows = self._rows("SELECT DISTINCT trace_id FROM spans WHERE trace_id >= ? AND trace_id < ? "
                          "ORDER BY trace_id LIMIT ?", [*hex_prefix_range(prefix), int(limit)])
        return [row["trace_id"] for row in rows]

    def logs(self, since_ns, until_ns=None, text=None, level=None, service=None, logger=None, trace_id=None,
             limit=100):
        """Log records since ``since_ns``, newest first: whose body contains ``text`` (any
        case), at ``level`` (a severity number) or above, of ``service``, of ``logger`` or a
        logger below it (``app`` takes ``app.views``), of the trace ``trace_id`` (a prefix).
        By text or logger, among the newest ``LOG_SCAN_BUDGET`` records of the window only
        (``log_search_edge``: how far that reaches)."""
        clauses, parameters = ["time_ns >= ?"], [since_ns]
        if until_ns is not None:
            clauses.append("time_ns <= ?")
            parameters.append(until_ns)
        edge = self.log_search_edge(since_ns, until_ns) if text or logger else None
        if edge is not None:
            clauses.append("time_ns >= ?")
            parameters.append(edge)
        if text:
            clauses.append("lower(body) LIKE ? ESCAPE '\\'")
            parameters.append("%" + re.sub(r"([\\%_])", r"\\\1", text.lower()) + "%")
        if level:
            clauses.append("severity_number >= ?")
            parameters.append(int(level))
        if service:
            clauses.append("service = ?")
            parameters.append(service)
        if logger:
            name = dumps(logger)
            clauses.append(self._contains_any("attributes", [f'"log.logger":{name}', f'"log.logger":{name[:-1]}.'],
                                              parameters))
        if trace_id:
            clauses.append("trace_id >= ? AND trace_id < ?")
            parameters += hex_prefix_range(trace_id.lower())
        rows = self._rows(f"SELECT * FROM logs WHERE {' AND '.join(clauses)} ORDER BY time_ns DESC LIMIT ?",
                          [*parameters, int(limit)])
        return [_log_row(row) for row in rows]

    def log_search_edge(self, since_ns, until_ns=None):
        """The time of the oldest record a search by text or logger reads: the
        ``LOG_SCAN_BUDGET``-th newest of the window (from the time index alone); older ones
        are not searched. ``None`` when the window holds fewer."""
        clauses, parameters = ["time_ns >= ?"], [since_ns]
        if until_ns is not None:
            clauses.append("time_ns <= ?")
            parameters.append(until_ns)
        rows = self._rows(f"SELECT time_ns FROM logs WHERE {' AND '.join(clauses)} ORDER BY time_ns DESC "
                          f"LIMIT 1 OFFSET ?", [*parameters, LOG_SCAN_BUDGET - 1])
        return rows[0]["time_ns"] if rows else None


def _log_row(row):
    from .queries import _log

    log = _log(row)
    attributes = log["attributes"] or {}
    logger = attributes.get("log.logger") if isinstance(attributes, dict) else None
    log["logger"] = None if logger is None else str(logger)
    return log
