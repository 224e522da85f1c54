"""What the two stores' schemas (``sqlite_schema``, ``postgres_schema``) declare alike,
written once: their migrations' tables and indexes with the words that differ left open,
which each schema fills in with its own (``typed``, from its ``DIALECT``):

    {int}    a 64-bit integer (OTLP's are)      {real}   a double
    {bool}   a flag                             {false}  the flag's false
    {id}     an integer key the database assigns
    {without_rowid}   SQLite's clustered tables (keyed by their primary key)
    {by_start_ns}, {by_time_ns}   PostgreSQL's partitioning of a table by time
    {span_key}   what makes a span unique (PostgreSQL's includes the partition key)
    {joined_ids}   an aggregate of trace_id: the ids joined by spaces

What only one of them has (PostgreSQL's default partitions, either's own indexes, their
JSON functions) stays in that schema's own text.
"""


def typed(text, types):
    """``text`` with each placeholder replaced by ``types[name]``."""
    return text.format_map(types)


# Migration 1, the first schema: every table but the error events' (ERROR_EVENTS)
FIRST = """
    CREATE TABLE resources (
        key TEXT PRIMARY KEY, service TEXT NOT NULL, instance TEXT NOT NULL,
        attributes TEXT NOT NULL, first_seen_ns {int} NOT NULL, last_seen_ns {int} NOT NULL
    ){without_rowid};

    CREATE TABLE spans (
        trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT,
        resource_key TEXT NOT NULL, service TEXT NOT NULL, scope TEXT, name TEXT NOT NULL,
        kind {int} NOT NULL, start_ns {int} NOT NULL, end_ns {int} NOT NULL,
        duration_ns {int} NOT NULL, status_code {int} NOT NULL, status_message TEXT,
        is_root {bool} NOT NULL, route TEXT, http_method TEXT, http_status {int},
        is_error {bool} NOT NULL, user_id TEXT, call_key TEXT, call_label TEXT,
        call_category TEXT, call_count {int}, attributes TEXT NOT NULL, events TEXT, links TEXT
    ){by_start_ns};
    CREATE UNIQUE INDEX spans_by_trace ON spans ({span_key});
    CREATE INDEX requests_by_time ON spans (start_ns) WHERE is_root;
    CREATE INDEX requests_by_service ON spans (service, start_ns) WHERE is_root;
    CREATE INDEX calls_by_time ON spans (start_ns) WHERE call_key IS NOT NULL;

    CREATE TABLE logs (
        time_ns {int} NOT NULL, resource_key TEXT NOT NULL, service TEXT NOT NULL,
        severity_number {int}, severity_text TEXT, body TEXT, trace_id TEXT, span_id TEXT,
        event_name TEXT, attributes TEXT NOT NULL
    ){by_time_ns};
    CREATE INDEX logs_by_trace ON logs (trace_id) WHERE trace_id IS NOT NULL;

    CREATE TABLE error_groups (
        id {id}, service TEXT NOT NULL, fingerprint TEXT NOT NULL,
        type TEXT NOT NULL, message TEXT NOT NULL, culprit TEXT NOT NULL,
        first_seen_ns {int} NOT NULL, last_seen_ns {int} NOT NULL,
        count {int} NOT NULL, latest_event_id {int},
        UNIQUE (service, fingerprint)
    );
    CREATE INDEX error_groups_by_last_seen ON error_groups (last_seen_ns);

    CREATE TABLE metric_points (
        time_ns {int} NOT NULL, resource_key TEXT NOT NULL, service TEXT NOT NULL,
        instance TEXT NOT NULL, name TEXT NOT NULL, unit TEXT, kind TEXT NOT NULL,
        monotonic {bool} NOT NULL, temporality {int} NOT NULL, attributes TEXT NOT NULL,
        value {real}, count {int}, sum {real}, buckets TEXT
    ){by_time_ns};
    CREATE INDEX metric_points_by_name ON metric_points (name, service, time_ns);
"""

# Part of migration 1: one row per error event, under its group
ERROR_EVENTS = """
    CREATE TABLE error_events (
        id {id},
        group_id {int} NOT NULL REFERENCES error_groups (id) ON DELETE CASCADE,
        time_ns {int} NOT NULL, resource_key TEXT NOT NULL, service TEXT NOT NULL,
        trace_id TEXT, span_id TEXT, route TEXT, user_id TEXT, handled {bool},
        source TEXT NOT NULL, event TEXT NOT NULL
    );
    CREATE INDEX error_events_by_group ON error_events (group_id, time_ns);
    CREATE INDEX error_events_by_time ON error_events (time_ns);
    CREATE INDEX error_events_by_trace ON error_events (trace_id) WHERE trace_id IS NOT NULL;
"""

# Migration 2: profiles (collector/otlp_profiles.py): stacks and their sample counts, per
# trace and span where linked, else per service and time bucket; few rows (a trace's
# stacks), so one table that retention deletes from by time, as error_events
PROFILES = """
    CREATE TABLE profile_samples (
        time_ns {int} NOT NULL, resource_key TEXT NOT NULL, service TEXT NOT NULL,
        trace_id TEXT, span_id TEXT, stack TEXT NOT NULL, samples {int} NOT NULL
    );
    CREATE INDEX profile_samples_by_trace ON profile_samples (trace_id) WHERE trace_id IS NOT NULL;
    CREATE INDEX profile_samples_by_service ON profile_samples (service, time_ns) WHERE trace_id IS NULL;
    CREATE INDEX profile_samples_by_time ON profile_samples (time_ns);
"""

# Migration 3: the error workflow and slow calls (issue 17): a group's state (open,
# resolved, ignored), whether it came back as a regression, and the release it was resolved
# in; each event's release and each process's (service.version), to tell a later release;
# calls at or over their slow threshold (spyglass.slow), with their own index. Columns with
# a constant default are added without rewriting a table (or a partition).
ERROR_WORKFLOW = """
    ALTER TABLE error_groups ADD COLUMN state TEXT NOT NULL DEFAULT 'open';
    ALTER TABLE error_groups ADD COLUMN regression {bool} NOT NULL DEFAULT {false};
    ALTER TABLE error_groups ADD COLUMN state_changed_ns {int};
    ALTER TABLE error_groups ADD COLUMN resolved_release TEXT;
    ALTER TABLE error_events ADD COLUMN release TEXT;
    ALTER TABLE resources ADD COLUMN version TEXT;
    ALTER TABLE spans ADD COLUMN is_slow {bool} NOT NULL DEFAULT {false};
    CREATE INDEX slow_calls_by_time ON spans (start_ns) WHERE is_slow AND call_key IS NOT NULL;
    CREATE INDEX resources_by_version ON resources (service, version);
"""

# Migration 4: trace search by attribute (collector/search.py), each trace's key=value
# pairs, filled from the spans stored so far: {tag_pairs} is a query of (tag, trace_id,
# start_ns), one row per scalar attribute, in each schema's JSON functions
SPAN_TAGS = """
    CREATE TABLE span_tags (tag TEXT NOT NULL, trace_id TEXT NOT NULL, time_ns {int} NOT NULL);
    CREATE INDEX span_tags_by_trace ON span_tags (tag, trace_id);
    CREATE INDEX span_tags_by_time ON span_tags (time_ns);
    INSERT INTO span_tags (tag, trace_id, time_ns)
        SELECT DISTINCT tag, trace_id, start_ns FROM ({tag_pairs}) AS pairs
        WHERE length(tag) <= 200;
"""


# Migration 6: requests per minute, ten minutes and hour (collector/rollup.py), which the
# summaries read instead of the spans: per block, service, route, release and duration bucket;
# and how far that is rolled up (the watermark, and the store's mark then: SQLite's greatest
# span rowid). Run again over what it made, it changes nothing.
REQUEST_ROLLUP = """
    CREATE TABLE IF NOT EXISTS request_rollup (
        grain_ns {int} NOT NULL, start_ns {int} NOT NULL, service TEXT NOT NULL, http_method TEXT,
        route TEXT, name TEXT, release TEXT NOT NULL, bucket INTEGER NOT NULL, requests {int} NOT NULL,
        errors {int} NOT NULL, total_ns {int} NOT NULL, min_ns {int} NOT NULL,
        max_ns {int} NOT NULL
    );
    CREATE INDEX IF NOT EXISTS request_rollup_by_service ON request_rollup (grain_ns, service, start_ns);
    CREATE INDEX IF NOT EXISTS request_rollup_by_time ON request_rollup (grain_ns, start_ns);
    CREATE TABLE IF NOT EXISTS rollup_state (watermark_ns {int} NOT NULL, mark {int} NOT NULL);
    INSERT INTO rollup_state (watermark_ns, mark) SELECT 0, 0 WHERE NOT EXISTS (SELECT 1 FROM rollup_state)
"""


# Migration 7: the tag index as one row per distinct key=value pair of a request with the ids
# of its traces that carry it (collector/search.py), not a row per pair and trace (2.5 rows a
# span cost ingest as much as the spans). span_tags' rows move over, 256 ids a row, a tag's in
# time order.
TRACES_BY_TAG = """
    CREATE TABLE IF NOT EXISTS traces_by_tag (tag TEXT NOT NULL, first_ns {int} NOT NULL, time_ns {int} NOT NULL,
                                              traces TEXT NOT NULL);
    INSERT INTO traces_by_tag (tag, first_ns, time_ns, traces)
        SELECT tag, min(time_ns), max(time_ns), {joined_ids} FROM (
            SELECT tag, trace_id, time_ns, (row_number() OVER (PARTITION BY tag ORDER BY time_ns) - 1) / 256 AS part
            FROM span_tags) AS parts
        GROUP BY tag, part;
    DROP TABLE span_tags;
    CREATE INDEX IF NOT EXISTS traces_by_tag_lookup ON traces_by_tag (tag, time_ns);
    CREATE INDEX IF NOT EXISTS traces_by_tag_by_time ON traces_by_tag (time_ns);
"""


# Migration 8: calls per minute, ten minutes and hour (collector/rollup.py), which slow calls
# read instead of the spans: per block, service, call key, slow flag and duration bucket. Both
# rollups share the watermark, which starts again so that the calls stored so far are rolled
# up too (the requests' rows are replaced by the same).
CALL_ROLLUP = """
    CREATE TABLE IF NOT EXISTS call_rollup (
        grain_ns {int} NOT NULL, start_ns {int} NOT NULL, service TEXT NOT NULL, call_key TEXT NOT NULL,
        is_slow {bool} NOT NULL, bucket INTEGER NOT NULL, calls {int} NOT NULL, executions {int} NOT NULL,
        total_ns {int} NOT NULL, min_ns {int} NOT NULL, max_ns {int} NOT NULL
    );
    CREATE INDEX IF NOT EXISTS call_rollup_by_service ON call_rollup (grain_ns, service, start_ns);
    CREATE INDEX IF NOT EXISTS call_rollup_by_time ON call_rollup (grain_ns, start_ns);
    UPDATE rollup_state SET watermark_ns = 0, mark = 0
"""
