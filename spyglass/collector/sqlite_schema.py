"""The SQLite schema, as an ordered list of migrations; ``PRAGMA user_version`` counts them.

Append a migration to change the schema; never edit one that has shipped. What it shares
with PostgreSQL's is written once in ``schema``, with SQLite's words (``DIALECT``). Indexes serve
the UI's queries: requests by service and time (partial, on local roots only), calls by
time (partial, on call spans only), spans by trace, and everything by time for retention.
"""
from . import schema
from .schema import typed

#: The words of schema's shared parts, as SQLite writes them.
DIALECT = {"int": "INTEGER", "real": "REAL", "bool": "INTEGER", "false": "0",
           "id": "INTEGER PRIMARY KEY", "without_rowid": " WITHOUT ROWID", "by_start_ns": "",
           "by_time_ns": "", "span_key": "trace_id, span_id",
           "joined_ids": "group_concat(trace_id, ' ')"}

#: Migration 4's (tag, trace_id, start_ns) for each scalar attribute of the spans stored,
#: by SQLite's JSON functions (schema.SPAN_TAGS).
TAG_PAIRS = """
            SELECT pair.key || '=' || CASE pair.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
                                                     ELSE pair.value END AS tag, s.trace_id, s.start_ns
            FROM (SELECT trace_id, start_ns, attributes FROM spans WHERE json_valid(attributes)
                  AND json_type(attributes) = 'object') AS s, json_each(s.attributes) AS pair
            WHERE pair.type IN ('text', 'integer', 'real', 'true', 'false')"""

MIGRATIONS = [
    # 1: the first schema (schema.FIRST), with what retention reads by time
    typed(schema.FIRST + schema.ERROR_EVENTS, DIALECT) + """
    CREATE INDEX spans_by_time ON spans (start_ns);
    CREATE INDEX logs_by_time ON logs (time_ns);
    CREATE INDEX metric_points_by_time ON metric_points (time_ns);
    """,
    typed(schema.PROFILES, DIALECT),  # 2: profiles
    typed(schema.ERROR_WORKFLOW, DIALECT),  # 3: the error workflow and slow calls
    typed(schema.SPAN_TAGS, {**DIALECT, "tag_pairs": TAG_PAIRS}),  # 4: trace search by attribute
    # 5: the UI's queries over a million spans (issue 17): covering indexes, so that they
    # read index entries instead of rows (with their attributes JSON). Requests by service and
    # time carry every column the per-service queries read (is_root too: SQLite uses a
    # partial index as covering only when it holds the columns of its WHERE); requests by
    # service or route and duration, and calls by key and duration, are in the order their percentiles
    # are found in (ranked by a seek, not by sorting the window); slow calls by time carry
    # what their list reads
    """
    DROP INDEX IF EXISTS requests_by_service;
    CREATE INDEX IF NOT EXISTS requests_covering ON spans (service, start_ns, duration_ns, is_error, is_root, resource_key,
                                             http_method, route, name) WHERE is_root;
    CREATE INDEX IF NOT EXISTS requests_by_service_duration ON spans (service, duration_ns, start_ns, is_error, is_root)
        WHERE is_root;
    CREATE INDEX IF NOT EXISTS requests_by_route_duration ON spans (service, http_method, route, duration_ns, start_ns, is_error,
                                                      is_root) WHERE is_root;
    CREATE INDEX IF NOT EXISTS calls_by_duration ON spans (service, call_key, duration_ns, start_ns, is_slow, call_count)
        WHERE call_key IS NOT NULL;
    DROP INDEX IF EXISTS slow_calls_by_time;
    CREATE INDEX IF NOT EXISTS slow_calls_covering ON spans (start_ns, service, call_key, duration_ns, call_count, is_slow)
        WHERE is_slow AND call_key IS NOT NULL;
    """,
    typed(schema.REQUEST_ROLLUP, DIALECT),  # 6: requests per minute, ten minutes and hour (rollup.py)
    typed(schema.TRACES_BY_TAG, DIALECT),  # 7: the tag index, a row per pair and request
    typed(schema.CALL_ROLLUP, DIALECT),  # 8: calls per minute, ten minutes and hour (rollup.py)
]
