"""The SQLite schema, as an ordered list of migrations; ``PRAGMA user_version`` counts them.

Append a migration to change the schema; never edit one that has shipped. Indexes serve
the UI's queries: requests by service and time (partial, on local roots only), calls by
time (partial, on call spans only), spans by trace, and everything by time for retention.
"""

MIGRATIONS = [
    # 1: the first schema
    """
    CREATE TABLE resources (
        key TEXT PRIMARY KEY, service TEXT NOT NULL, instance TEXT NOT NULL,
        attributes TEXT NOT NULL, first_seen_ns INTEGER NOT NULL, last_seen_ns INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE spans (
        trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT,
        resource_key TEXT NOT NULL, service TEXT NOT NULL, scope TEXT, name TEXT NOT NULL,
        kind INTEGER NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
        duration_ns INTEGER NOT NULL, status_code INTEGER NOT NULL, status_message TEXT,
        is_root INTEGER NOT NULL, route TEXT, http_method TEXT, http_status INTEGER,
        is_error INTEGER NOT NULL, user_id TEXT, call_key TEXT, call_label TEXT,
        call_category TEXT, call_count INTEGER, attributes TEXT NOT NULL, events TEXT, links TEXT
    );
    CREATE UNIQUE INDEX spans_by_trace ON spans (trace_id, span_id);
    CREATE INDEX spans_by_time ON spans (start_ns);
    CREATE INDEX requests_by_time ON spans (start_ns) WHERE is_root;
    CREATE INDEX requests_by_service ON spans (service, start_ns) WHERE is_root;
    CREATE INDEX calls_by_time ON spans (start_ns) WHERE call_key IS NOT NULL;

    CREATE TABLE logs (
        time_ns INTEGER NOT NULL, resource_key TEXT NOT NULL, service TEXT NOT NULL,
        severity_number INTEGER, severity_text TEXT, body TEXT, trace_id TEXT, span_id TEXT,
        event_name TEXT, attributes TEXT NOT NULL
    );
    CREATE INDEX logs_by_time ON logs (time_ns);
    CREATE INDEX logs_by_trace ON logs (trace_id) WHERE trace_id IS NOT NULL;

    CREATE TABLE error_groups (
        id INTEGER PRIMARY KEY, service TEXT NOT NULL, fingerprint TEXT NOT NULL,
        type TEXT NOT NULL, message TEXT NOT NULL, culprit TEXT NOT NULL,
        first_seen_ns INTEGER NOT NULL, last_seen_ns INTEGER NOT NULL,
        count INTEGER NOT NULL, latest_event_id INTEGER,
        UNIQUE (service, fingerprint)
    );
    CREATE INDEX error_groups_by_last_seen ON error_groups (last_seen_ns);

    CREATE TABLE error_events (
        id INTEGER PRIMARY KEY,
        group_id INTEGER NOT NULL REFERENCES error_groups (id) ON DELETE CASCADE,
        time_ns INTEGER NOT NULL, resource_key TEXT NOT NULL, service TEXT NOT NULL,
        trace_id TEXT, span_id TEXT, route TEXT, user_id TEXT, handled INTEGER,
        source TEXT NOT NULL, event TEXT NOT NULL
    );
    CREATE INDEX error_events_by_group ON error_events (group_id, time_ns);
    CREATE INDEX error_events_by_time ON error_events (time_ns);
    CREATE INDEX error_events_by_trace ON error_events (trace_id) WHERE trace_id IS NOT NULL;

    CREATE TABLE metric_points (
        time_ns INTEGER NOT NULL, resource_key TEXT NOT NULL, service TEXT NOT NULL,
        instance TEXT NOT NULL, name TEXT NOT NULL, unit TEXT, kind TEXT NOT NULL,
        monotonic INTEGER NOT NULL, temporality INTEGER NOT NULL, attributes TEXT NOT NULL,
        value REAL, count INTEGER, sum REAL, buckets TEXT
    );
    CREATE INDEX metric_points_by_name ON metric_points (name, service, time_ns);
    CREATE INDEX metric_points_by_time ON metric_points (time_ns);
    """,
    # 2: profiles (otlp_profiles): stacks and their sample counts, per trace and span where
    # linked, else per service and time bucket
    """
    CREATE TABLE profile_samples (
        time_ns INTEGER NOT NULL, resource_key TEXT NOT NULL, service TEXT NOT NULL,
        trace_id TEXT, span_id TEXT, stack TEXT NOT NULL, samples INTEGER NOT NULL
    );
    CREATE INDEX profile_samples_by_trace ON profile_samples (trace_id) WHERE trace_id IS NOT NULL;
    CREATE INDEX profile_samples_by_service ON profile_samples (service, time_ns) WHERE trace_id IS NULL;
    CREATE INDEX profile_samples_by_time ON profile_samples (time_ns);
    """,
    # 3: the error workflow and slow calls (issue 17): a group's state (open, resolved,
    # ignored), whether it came back as a regression, and the release it was resolved in;
    # each event's release and each process's (service.version), to tell a later release;
    # calls at or over their slow threshold (spyglass.slow), with their own index
    """
    ALTER TABLE error_groups ADD COLUMN state TEXT NOT NULL DEFAULT 'open';
    ALTER TABLE error_groups ADD COLUMN regression INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE error_groups ADD COLUMN state_changed_ns INTEGER;
    ALTER TABLE error_groups ADD COLUMN resolved_release TEXT;
    ALTER TABLE error_events ADD COLUMN release TEXT;
    ALTER TABLE resources ADD COLUMN version TEXT;
    ALTER TABLE spans ADD COLUMN is_slow INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX slow_calls_by_time ON spans (start_ns) WHERE is_slow AND call_key IS NOT NULL;
    CREATE INDEX resources_by_version ON resources (service, version);
    """,
    # 4: trace search by attribute (collector/search.py): each trace's key=value pairs, filled
    # from the spans stored so far
    """
    CREATE TABLE span_tags (tag TEXT NOT NULL, trace_id TEXT NOT NULL, time_ns INTEGER NOT NULL);
    CREATE INDEX span_tags_by_trace ON span_tags (tag, trace_id);
    CREATE INDEX span_tags_by_time ON span_tags (time_ns);
    INSERT INTO span_tags (tag, trace_id, time_ns)
        SELECT DISTINCT tag, trace_id, start_ns FROM (
            SELECT pair.key || '=' || CASE pair.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
                                                     ELSE pair.value END AS tag, s.trace_id, s.start_ns
            FROM (SELECT trace_id, start_ns, attributes FROM spans WHERE json_valid(attributes)
                  AND json_type(attributes) = 'object') AS s, json_each(s.attributes) AS pair
            WHERE pair.type IN ('text', 'integer', 'real', 'true', 'false'))
        WHERE length(tag) <= 200
    """,
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
    # 6 (the ingest branch's; renumbered after the rollups' at merge): the tag index as one
    # row per distinct key=value pair of a request with the ids of its traces that carry it
    # (collector/search.py), not a row per pair and trace: 2.5 rows a span cost ingest as
    # much as the spans. span_tags' rows move over, 256 ids a row, a tag's in time order
    """
    CREATE TABLE IF NOT EXISTS traces_by_tag (tag TEXT NOT NULL, first_ns INTEGER NOT NULL, time_ns INTEGER NOT NULL,
                                              traces TEXT NOT NULL);
    INSERT INTO traces_by_tag (tag, first_ns, time_ns, traces)
        SELECT tag, min(time_ns), max(time_ns), group_concat(trace_id, ' ') FROM (
            SELECT tag, trace_id, time_ns, (row_number() OVER (PARTITION BY tag ORDER BY time_ns) - 1) / 256 AS part
            FROM span_tags)
        GROUP BY tag, part;
    DROP TABLE span_tags;
    CREATE INDEX IF NOT EXISTS traces_by_tag_lookup ON traces_by_tag (tag, time_ns);
    CREATE INDEX IF NOT EXISTS traces_by_tag_by_time ON traces_by_tag (time_ns);
    """,
]
