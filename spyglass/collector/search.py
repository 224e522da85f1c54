"""Trace search and log search: the filters ``/api/traces`` and ``/api/logs`` add to the
shared queries (``queries``), in SQL both SQLite and PostgreSQL run.

Attributes are stored as JSON text, written by one encoder (``model.dumps``: no spaces,
non-ASCII as it is). A ``key=value`` filter is therefore a search for the text that
encoder writes for that pair, ``"key":"value"`` (or ``"key":42``, ``"key":true`` for a
value that reads as a number or a boolean), inside the JSON: exact, case-sensitive, and
no quote inside a stored string can fake it (the encoder escapes them). A trace matches
when any of its spans, the request's own or any call below it, carries the pair.

The index ``traces_by_tag`` says which traces carry a pair: one row per distinct pair of
a request (not per trace: most pairs repeat from trace to trace) with the ids of the
request's traces that carry it, so that ingest writes a few rows per request. A pair in
few rows is looked up there; one in many (a common one) is probed for in the spans,
request by request, newest first, where matches come soon. The index holds every
top-level scalar pair up to ``MAX_TAG_CHARS`` long, but at most ``MAX_TAGS`` per request
(so its memory is bounded): the traces of the pairs left out are listed under
``INCOMPLETE``, and a search probes their spans too, so it misses nothing.
"""
import re

from .model import INT64_MAX, SPAN_COLUMNS, dumps

#: Severity numbers of the level names (OpenTelemetry's): each level covers four numbers.
LEVELS = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "warning": 13, "error": 17, "fatal": 21, "critical": 21}
#: The index holds ``key=value`` texts up to this long (longer pairs are searched in the spans).
MAX_TAG_CHARS = 200
#: Distinct pairs a request adds to the index at most; the traces of the others are probed.
MAX_TAGS = 8192
#: The tag of the traces that carry a pair the index left out.
INCOMPLETE = "*"
#: Trace ids in one row of the index at most.
MAX_ROW_TRACES = 256
TAG_COLUMNS = ("tag", "first_ns", "time_ns", "traces")
_START_AT = SPAN_COLUMNS.index("start_ns")
#: A pair in at most this many rows of the index, for at most ``RARE_TAG_TRACES`` traces,
#: is looked up; one in more, probed for.
RARE_TAG_ROWS, RARE_TAG_TRACES = 500, 2000
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


def add_tags(batch, trace_id, attributes):
    """Add to ``batch.tags`` (pair -> ids of the traces that carry it) the ``key=value``
    pairs of a span's scalar ``attributes`` (as decoded). Runs for every attribute of
    every span: the usual case, a pair seen before in the request, takes the short way."""
    tags = batch.tags
    for key, value in attributes.items():
        kind = type(value)
        if kind is bool:
            value = "true" if value else "false"
        elif kind is not str and kind is not int and kind is not float:
            continue  # none, or an array or kvlist
        tag = f"{key}={value}"
        if len(tag) > MAX_TAG_CHARS or "=" in key:  # a key with "=" is never searched for (nor told apart)
            continue
        traces = tags.get(tag)
        if traces is None:
            if len(tags) < MAX_TAGS and "\0" not in tag and _encodable(tag):
                tags[tag] = [trace_id]
            elif not batch.untagged or batch.untagged[-1] != trace_id:
                batch.untagged.append(trace_id)
        elif traces[-1] != trace_id:
            traces.append(trace_id)


def tag_rows(batch):
    """The rows of ``TAG_COLUMNS`` that index ``batch``: each pair's traces (space-separated
    ids, at most ``MAX_ROW_TRACES`` a row) and when the request's spans started, first to
    last (retention deletes a row once all of them are gone)."""
    if not batch.spans:
        return []
    starts = [row[_START_AT] for row in batch.spans]
    first_ns, last_ns = min(starts), max(starts)
    rows = []
    for tag, traces in [*batch.tags.items(), (INCOMPLETE, batch.untagged)]:
        traces = list(dict.fromkeys(traces)) if len(traces) > 1 else traces
        for at in range(0, len(traces), MAX_ROW_TRACES):
            rows.append((tag, first_ns, last_ns, " ".join(traces[at:at + MAX_ROW_TRACES])))
    return rows


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
    """The index's ``key=value`` texts that a search for ``key=value`` matches: as typed, and a
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
            indexed = max(map(len, tags)) <= MAX_TAG_CHARS  # else in the spans alone
            clauses.append(indexed and self._tagged(tags, attribute, window, parameters)
                           or self._carried(attribute, window, parameters))

    def _tagged(self, tags, attribute, window, parameters):
        """The clause for traces with one of ``tags`` in ``window``, from the ids the index
        lists for them (and, probed, those of the traces it may not list them for); ``None``
        for a common tag, which is better probed for."""
        marks = ", ".join("?" * (len(tags) + 1))
        rows = self._rows(f"SELECT tag, traces FROM traces_by_tag WHERE tag IN ({marks}) AND time_ns >= ? "
                          f"AND first_ns <= ? LIMIT {RARE_TAG_ROWS + 1}", [*tags, INCOMPLETE, *window])
        found, unsure = set(), set()
        for row in rows:
            (unsure if row["tag"] == INCOMPLETE else found).update(row["traces"].split())
        unsure -= found
        if len(rows) > RARE_TAG_ROWS or len(found) + len(unsure) > RARE_TAG_TRACES:
            return None
        parameters += sorted(found) or [""]
        clause = f"trace_id IN ({', '.join('?' * max(1, len(found)))})"
        if not unsure:
            return clause
        parameters += sorted(unsure)
        return f"({clause} OR (trace_id IN ({', '.join('?' * len(unsure))}) AND " \
               f"{self._carried(attribute, window, parameters)}))"

    def _carried(self, attribute, window, parameters):
        """The clause for traces with a span in ``window`` whose attributes hold the pair."""
        parameters += window
        member = self._contains_any("member.attributes", attribute_needles(*attribute), parameters)
        return (f"EXISTS (SELECT 1 FROM spans AS member WHERE member.trace_id = spans.trace_id "
                f"AND member.start_ns BETWEEN ? AND ? AND {member})")

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
