"""The OpenAPI 3.1 description of the collector's JSON API, served at ``/api/openapi.json``.

It says what the API takes and what it answers closely enough for a tool to generate
requests from it (the tests run schemathesis on it): every parameter's form, every status.
"""
from functools import lru_cache

from .search import LOG_SCAN_BUDGET

NULLABLE_NUMBER = {"type": ["number", "null"]}
NULLABLE_INTEGER = {"type": ["integer", "null"]}
NULLABLE_STRING = {"type": ["string", "null"]}
#: Text without NUL characters (no store takes them).
TEXT = {"type": "string", "pattern": "^[^\\u0000]*$"}


def _param(name, description, schema=None, where="query", required=False):
    return {"name": name, "in": where, "required": required, "description": description,
            "schema": schema or TEXT}


_INSTANT = {"type": "string", "pattern": (
    "^([0-9]{1,9}(\\.[0-9]{1,6})?"  # unix seconds, up to 2262
    "|(19[7-9][0-9]|2[01][0-9][0-9]|22[0-5][0-9])-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
    "(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?)?)$")}
_WINDOW = [
    _param("since", "Window length back from now (or from `end`): 90 (seconds), 500ms, 30s, 15m, 2h, 7d, 2w. "
                    "Default 1h; longer than since 1970 means since 1970.",
           {"type": "string", "pattern": "^[0-9]{1,15}(\\.[0-9]{1,9})?(ms|s|m|h|d|w)?$"}),
    _param("start", "Window start: unix seconds or ISO 8601 (local time without a zone), 1970 to 2262.", _INSTANT),
    _param("end", "Window end: unix seconds or ISO 8601, 1970 to 2262.", _INSTANT),
]
_SERVICE = _param("service", "Only this service (`service.name`).")
_LIMIT = _param("limit", "At most this many items (at most 1000 are returned).", {"type": "integer", "minimum": 0})
_GROUP_ID = _param("group_id", "The group's id.", {"type": "integer", "minimum": 0,
                                                    "maximum": 9_223_372_036_854_775_807}, "path", True)
_LATENCY = {"requests": {"type": "integer"}, "errors": {"type": "integer"}, "error_rate": {"type": "number"},
            "p50_ms": NULLABLE_NUMBER, "p95_ms": NULLABLE_NUMBER, "p99_ms": NULLABLE_NUMBER, "max_ms": NULLABLE_NUMBER}
_ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
}


def _object(properties, required=()):
    return {"type": "object", "properties": properties, "required": list(required or properties)}


def _list_of(item_key, item_schema, **more):
    return _object({"since_ns": {"type": "integer", "description": "Window start, unix ns."},
                    item_key: {"type": "array", "items": item_schema}, **more})


def _get(summary, parameters, schema, description="", not_found=None):
    responses = {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}, **_ERRORS}
    if not_found:
        responses["404"] = {"$ref": "#/components/responses/NotFound", "description": not_found}
    return {"get": {"summary": summary, "description": description, "parameters": parameters,
                    "responses": responses}}


_SERVICE_ROW = _object({"service": {"type": "string"}, "instances": {"type": "integer"},
                        "last_seen_ns": NULLABLE_INTEGER, **_LATENCY})
_ROUTE_ROW = _object({"service": {"type": "string"}, "method": NULLABLE_STRING, "route": NULLABLE_STRING,
                      "name": NULLABLE_STRING, "total_ms": {"type": "number"}, **_LATENCY})
_TRACE_ROW = _object({
    "trace_id": {"type": "string"}, "span_id": {"type": "string"}, "service": {"type": "string"},
    "name": {"type": "string"}, "route": NULLABLE_STRING, "http_method": NULLABLE_STRING,
    "http_status": NULLABLE_INTEGER, "start_ns": {"type": "integer"}, "duration_ms": {"type": "number"},
    "is_error": {"type": "boolean"}, "user_id": NULLABLE_STRING, "span_count": {"type": "integer"},
}, required=("trace_id", "span_id", "service", "name", "start_ns", "duration_ms", "is_error"))
_SPAN = _object({
    "trace_id": {"type": "string"}, "span_id": {"type": "string"}, "parent_span_id": NULLABLE_STRING,
    "service": {"type": "string"}, "name": {"type": "string"}, "kind": {"type": "integer"},
    "start_ns": {"type": "integer"}, "end_ns": {"type": "integer"}, "duration_ms": {"type": "number"},
    "status_code": {"type": "integer"}, "is_root": {"type": "boolean"}, "is_error": {"type": "boolean"},
    "attributes": {"type": "object"}, "events": {"type": "array"}, "links": {"type": "array"},
}, required=("trace_id", "span_id", "name", "start_ns", "end_ns", "duration_ms", "attributes"))
_LOG = _object({"time_ns": {"type": "integer"}, "severity_number": NULLABLE_INTEGER,
                "severity_text": NULLABLE_STRING, "body": NULLABLE_STRING, "event_name": NULLABLE_STRING,
                "attributes": {"type": ["object", "null"]}}, required=("time_ns",))
_TRACE = _object({
    "trace_id": {"type": "string"}, "start_ns": {"type": "integer"}, "duration_ms": {"type": "number"},
    "services": {"type": "array", "items": {"type": "string"}}, "spans": {"type": "array", "items": _SPAN},
    "resources": {"type": "object"}, "logs": {"type": "array", "items": _LOG}, "errors": {"type": "array"},
})
_CALL_ROW = _object({
    "service": {"type": "string"}, "key": {"type": "string"}, "label": NULLABLE_STRING,
    "category": NULLABLE_STRING, "count": {"type": "integer"}, "total_ms": {"type": "number"},
    "avg_ms": {"type": "number"}, "p95_ms": NULLABLE_NUMBER, "max_ms": NULLABLE_NUMBER,
    "slowest_trace_id": {"type": "string"}, "slowest_span_id": {"type": "string"},
    "p95_series": {"type": "array", "description": "[unix seconds (a bucket's start), p95 ms or null], "
                                                   "every bucket of the window (buckets of whole minutes "
                                                   "end with the rollup's block the window ends in: the "
                                                   "first may start before the window); each p95 is the "
                                                   "longest call of the duration bucket (9 % wide) that "
                                                   "holds it: exact, or at most 9 % above", "items": {
        "type": "array", "items": NULLABLE_NUMBER, "minItems": 2, "maxItems": 2}},
}, required=("service", "key", "count", "total_ms", "p95_series"))
_STATE = {
    "state": {"type": "string", "enum": ["open", "resolved", "ignored"]},
    "regression": {"type": "boolean", "description": "Resolved, then seen again in a later release (reopened)."},
    "state_changed_ns": NULLABLE_INTEGER,
    "resolved_release": {**NULLABLE_STRING, "description": "The release (`service.version`) of the latest event "
                                                          "when it was resolved: events of that release or an "
                                                          "earlier one leave it resolved."},
}
_GROUP_ROW = _object({
    "id": {"type": "integer"}, "service": {"type": "string"}, "fingerprint": {"type": "string"},
    "type": {"type": "string"}, "message": {"type": "string"}, "culprit": {"type": "string"},
    "first_seen_ns": {"type": "integer"}, "last_seen_ns": {"type": "integer"}, "count": {"type": "integer"},
    "users": {"type": "integer"}, **_STATE,
}, required=("id", "service", "type", "message", "count", "last_seen_ns", "state", "regression"))
_GROUP = {**_GROUP_ROW, "properties": {
    **_GROUP_ROW["properties"],
    "latest_event": {"type": ["object", "null"], "properties": {"event": {"type": "object", "properties": {
        "type": {"type": "string"}, "message": {"type": "string"}, "frames": {"type": "array", "items": {
            "type": "object", "properties": {"lineno": {"type": "integer"}, "in_app": {"type": "boolean"}}}},
        "handled": {"type": "boolean"}, "request": {"type": "object"}, "user": {"type": "object"},
        "breadcrumbs": {"type": "array", "items": {"type": "object"}}}}}},
    "events": {"type": "array", "items": {"type": "object"}},
    "logs": {"type": "array", "items": _LOG},
    "since_ns": {"type": "integer"}, "step_ns": {"type": "integer"},
    "frequency": {"type": "array", "description": "[unix seconds (a bucket's start), events], every bucket of "
                                                  "the window", "items": {
        "type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}},
    "breakdown": _object({name: {"type": "array", "items": _object({
        "value": NULLABLE_STRING, "events": {"type": "integer"}})} for name in ("route", "release", "user")}),
}, "required": [*_GROUP_ROW["required"], "frequency", "breakdown"]}
_STATE_CHANGE = {"type": "object", "properties": {"state": {"type": "string", "enum": ["open", "resolved", "ignored"]}},
                 "required": ["state"], "additionalProperties": False}


def _post_state():
    return {"post": {
        "summary": "Change an error group's state: open, resolved or ignored",
        "description": "A resolved group whose error happens again in a later release (by when the collector "
                       "first saw each `service.version`) reopens with `regression` true; events of the "
                       "release it was resolved in, or an earlier one, leave it resolved. Ignored groups are "
                       "left out of `/api/errors` unless asked for.",
        "parameters": [_GROUP_ID],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _STATE_CHANGE}}},
        "responses": {
            "200": {"description": "The group's state now", "content": {"application/json": {"schema": _object(
                {"id": {"type": "integer"}, **_STATE})}}},
            **_ERRORS,
            "404": {"$ref": "#/components/responses/NotFound", "description": "No such group"},
            "413": {"$ref": "#/components/responses/BadRequest", "description": "A body over 4 KiB"},
            "415": {"$ref": "#/components/responses/BadRequest", "description": "A body that is not JSON"},
        }}}
_METRIC_ROW = _object({
    "service": {"type": "string"}, "instance": {"type": "string"}, "name": {"type": "string"},
    "unit": NULLABLE_STRING, "kind": {"type": "string"}, "attributes": {"type": ["object", "null"]},
    "value": NULLABLE_NUMBER, "count": NULLABLE_INTEGER, "sum": NULLABLE_NUMBER, "time_ns": {"type": "integer"},
}, required=("service", "instance", "name", "kind", "time_ns"))
#: [unix seconds, value]
_POINTS = {"type": "array", "items": {"type": "array", "items": NULLABLE_NUMBER, "minItems": 2, "maxItems": 2}}
_SERIES = _object({
    "service": {"type": "string"}, "instance": {"type": "string"}, "attributes": {"type": ["object", "null"]},
    "unit": NULLABLE_STRING, "kind": {"type": "string"}, "as_rate": {"type": "boolean"}, "points": _POINTS,
    "rate": _POINTS,
}, required=("service", "instance", "kind", "points"))

_SERVICE_PATH = _param("service", "The service (`service.name`).", {"type": "string", "pattern": "^[^\\u0000]+$"},
                       "path", True)
_STEP = _param("step", "Bucket length: 60 (seconds), 30s, 5m, 1h. Default and minimum: what keeps the "
                       "window within 360 buckets (a whole minute at least over an hour or more).",
               {"type": "string", "pattern": "^[0-9]{1,15}(\\.[0-9]{1,9})?(ms|s|m|h|d|w)?$"})
_RELEASE = _object({
    "version": {"type": "string", "description": "`service.version`; empty where the processes had none."},
    "first_ns": {"type": "integer"}, "last_ns": {"type": "integer"}, "requests": {"type": "integer"},
    "marker": {"type": "boolean", "description": "The release started inside the window."}})
_COLUMN = {"type": "array", "items": NULLABLE_NUMBER}
_RELEASE_SIDE = {"type": ["object", "null"], "properties": {
    "requests": {"type": "integer"}, "error_rate": {"type": "number"}, "p95_ms": {"type": "number"}}}
#: A service over time (collector/series.py).
_SERVICE_OVER_TIME = {
    "/api/services/{service}/series": _get(
        "A service's requests over time in buckets: throughput, error rate, p50/p95/p99; its releases",
        [_SERVICE_PATH, *_WINDOW, _STEP,
         _param("route", "Only this route (`http.route`) or root span name."),
         _param("method", "Only this HTTP method (with `route`).")],
        _object({"service": {"type": "string"}, "since_ns": {"type": "integer"}, "until_ns": {"type": "integer"},
                 "step_s": {"type": "integer"},
                 "series": _object({name: _COLUMN for name in (
                     "t", "requests", "rps", "errors", "error_rate", "p50_ms", "p95_ms", "p99_ms")}),
                 "releases": {"type": "array", "items": _RELEASE}}),
        "Columns of equal length, one entry per bucket; `t` is the bucket's start in unix seconds. "
        "Buckets without requests have null latencies and error rate. A step of whole minutes is read "
        "from the per-minute rollup: the buckets are whole minutes, the last one ending with the block "
        "`until` is in (a minute, ten minutes or an hour: the longest that divides the step), and each percentile is the longest request of the duration bucket (9 % wide) "
        "that holds it: exact where that bucket holds one duration, otherwise at most 9 % above. "
        "Shorter steps have exact percentiles."),
    "/api/services/{service}": _get(
        "One service: requests, error rate, p50/p95/p99 and processes over the window; its releases "
        "(`service.version`) and the latest compared with the one before: p95 and error rate per route "
        "(each p95 the longest request of its 9 %-wide duration bucket: at most 9 % above the exact one), "
        "new error groups",
        [_SERVICE_PATH, *_WINDOW],
        _object({"service": {"type": "string"}, "since_ns": {"type": "integer"}, "until_ns": {"type": "integer"},
                 **_LATENCY, "instances": {"type": "integer"},
                 "routes": {"type": "array", "items": _object({
                     "method": NULLABLE_STRING, "route": NULLABLE_STRING, "name": {"type": "string"},
                     "requests": {"type": "integer"}})},
                 "releases": {"type": "array", "items": _RELEASE},
                 "comparison": _object({
                     "current": NULLABLE_STRING, "previous": NULLABLE_STRING,
                     "routes": {"type": "array", "items": _object({
                         "method": NULLABLE_STRING, "route": NULLABLE_STRING, "name": {"type": "string"},
                         "current": _RELEASE_SIDE, "previous": _RELEASE_SIDE, "slower": {"type": "boolean"},
                         "more_errors": {"type": "boolean"}, "p95_change": NULLABLE_NUMBER})},
                     "new_errors": {"type": "array", "items": _object({
                         "id": {"type": "integer"}, "type": {"type": "string"}, "message": {"type": "string"},
                         "culprit": {"type": "string"}, "events": {"type": "integer"}})}})})),
    "/api/metric-names": _get(
        "The metrics each service reported in the window, with how its processes add up",
        [*_WINDOW, _SERVICE],
        _object({"since_ns": {"type": "integer"}, "until_ns": {"type": "integer"},
                 "metrics": {"type": "array", "items": _object({
                     "service": {"type": "string"}, "name": {"type": "string"}, "unit": NULLABLE_STRING,
                     "kind": {"type": "string"}, "instances": {"type": "integer"}, "last_ns": {"type": "integer"},
                     "monotonic": {"type": "boolean"},
                     "aggregation": {"type": "string", "enum": ["sum", "mean"]}})}})),
    "/api/services/{service}/metrics/{name}": _get(
        "One metric of a service over time, its processes summed or averaged as the metric means; "
        "cumulative counters as a per-second rate",
        [_SERVICE_PATH, _param("name", "Metric name, e.g. process.memory.usage.",
                               {"type": "string", "pattern": "^[^/\\u0000]+$"}, "path", True),
         *_WINDOW, _STEP],
        _object({"name": {"type": "string"}, "service": {"type": "string"}, "since_ns": {"type": "integer"},
                 "until_ns": {"type": "integer"}, "step_s": {"type": "integer"}, "unit": NULLABLE_STRING,
                 "kind": NULLABLE_STRING, "aggregation": {"type": "string", "enum": ["sum", "mean"]},
                 "as_rate": {"type": "boolean"},
                 "series": {"type": "array", "items": _object({
                     "attributes": {"type": ["object", "null"]}, "instances": {"type": "integer"},
                     "points": _POINTS})}}),
        "Sum for shares of the processes (CPU time, memory, threads), mean for ratios and durations "
        "(utilization, request duration); see `aggregation` in the answer."),
}


_HEX_PREFIX = {"type": "string", "pattern": "^\\s*[0-9a-fA-F]{1,32}\\s*$"}
_UNTIL = _param("until", "Window end, as `end` (and taken over it): unix seconds or ISO 8601.", _INSTANT)
_TRACE_SEARCH = [
    _UNTIL,
    _param("max_duration_ms", "Only requests at most this long (below `min_duration_ms`, none).",
           {"type": "number", "minimum": 0, "maximum": 9_223_372_036_854}),
    _param("attribute", "`key=value`: only traces with a span (the request's or any call's) whose attribute "
                        "`key` is `value`, e.g. `db.system=postgresql`; a value like 42 or true also matches "
                        "a number or boolean attribute.",
           # The key's first character is none that str.strip() takes away: \s leaves out
           # the separators U+001C-U+001F and U+0085, which Python counts as white space.
           {"type": "string",
            "pattern": "^\\s*[^=\\s\\u0000\\u001c-\\u001f\\u0085][^=\\u0000]{0,255}=[^\\u0000]{0,1000}$"}),
    _param("trace_id", "Only the trace with this id, or the traces whose id starts so.", _HEX_PREFIX),
]
_LOG_ROW = _object({
    **_LOG["properties"], "service": {"type": "string"}, "trace_id": NULLABLE_STRING, "span_id": NULLABLE_STRING,
    "logger": NULLABLE_STRING}, required=("time_ns", "service"))


@lru_cache(maxsize=1)
def openapi_document():
    return {
        "openapi": "3.1.0",
        "info": {"title": "spyglass collector API", "version": "1",
                 "description": "What `spyglass serve` derived from the OTLP it received. Times are unix "
                                "nanoseconds (`*_ns`), durations milliseconds (`*_ms`). Numbers are finite: "
                                "NaN and the infinities a sender measured are `null`. When the collector "
                                "has an API key, send it as `Authorization: Bearer KEY`, `X-API-Key: KEY` "
                                "or as the password of Basic auth."},
        "paths": {
            "/api": _get("This index: the endpoints and where this document is", [], _object({
                "openapi": {"type": "string"}, "endpoints": {"type": "array", "items": {"type": "string"}}})),
            "/api/health": _get("Liveness, schema version, and the store: backend, location, limits", [], _object({
                "status": {"type": "string"}, "schema_version": NULLABLE_INTEGER,
                "store": {"type": "object", "properties": {
                    "backend": {"type": "string"}, "location": {"type": "string"},
                    "schema_version": NULLABLE_INTEGER}},
                "rolled_up_until_ns": {"type": "integer", "description": (
                    "The summaries' rollup is complete up to here (0: not begun): the minutes after it "
                    "are read from the spans. Minutes end a couple of minutes before they are rolled up; "
                    "after a backfill (spans sent late) this stays behind until they are.")}},
                required=("status",))),
            "/api/services": _get("Services: requests, error rate, latency percentiles, instances",
                                  _WINDOW, _list_of("services", _SERVICE_ROW)),
            "/api/routes": _get("Per service and route: requests, error rate, p50/p95/p99; slowest p95 first",
                                [*_WINDOW, _SERVICE], _list_of("routes", _ROUTE_ROW)),
            "/api/traces": _get("Requests (local root spans), newest first", [
                *_WINDOW, _SERVICE, _LIMIT,
                _param("route", "Routes (`http.route`, else the root span's name) that contain this, case "
                                "aside; placeholders match either form: `/users/{id}` finds `/users/<int:id>`. "
                                "`GET (no route)`: the GET requests no route matched."),
                _param("status", "HTTP status: a code (404), a class (5xx) or `error`.",
                       {"type": "string", "pattern": "^(error|[1-5]xx|[1-5][0-9][0-9])$"}),
                _param("min_duration_ms", "Only requests at least this long.",
                       {"type": "number", "minimum": 0, "maximum": 9_223_372_036_854}),
                _param("errors", "`1` or `true` for failed requests only.", {"type": "boolean"}),
                *_TRACE_SEARCH,
            ], _list_of("traces", _TRACE_ROW, until_ns=NULLABLE_INTEGER)),
            "/api/traces/{trace_id}": _get(
                "One trace: spans with parent links, attributes, events; its logs and errors",
                [_param("trace_id", "32 hex digits.", {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"},
                        "path", True)], _TRACE, not_found="No such trace"),
            "/api/slow-calls": _get("Calls grouped by normalized statement or operation", [
                *_WINDOW, _SERVICE, _LIMIT,
                _param("sort", "Rank by `total` time (default), `count` or `p95`.",
                       {"type": "string", "enum": ["total", "count", "p95"]}),
                _param("all", "`1` or `true` for every call; by default only those at or over their slow "
                              "threshold (`spyglass.slow`).", {"type": "boolean"}),
            ], _list_of("calls", _CALL_ROW, sort={"type": "string"}, slow_only={"type": "boolean"},
                        step_ns={"type": "integer"})),
            "/api/profile": _get(
                "Stacks by samples (a flame graph's data): a trace's, a route's requests' "
                "or a service's process-wide profiles", [
                    *_WINDOW, _SERVICE,
                    _param("limit", "At most this many stacks (at most 5000 are returned).",
                           {"type": "integer", "minimum": 0}),
                    _param("trace_id", "The trace's profile (32 hex digits); the window does not apply.",
                           {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"}),
                    _param("route", "The profiles of this route's (or root span name's) requests in the "
                                    "window; `GET (no route)`: those of the GET requests no route matched."),
                ], _object({"since_ns": {"type": "integer"}, "samples": {"type": "integer"},
                            "stacks": {"type": "array", "items": _object({
                                "frames": {"type": "array", "items": {"type": "string"},
                                           "description": "Outermost first."},
                                "samples": {"type": "integer"}})}}),
                "Give trace_id, route or service (else 400). `samples` in the answer counts all the "
                "matching samples, also those of stacks beyond `limit`."),
            "/api/errors": _get("Error groups by fingerprint, most recently seen first", [
                *_WINDOW, _SERVICE, _LIMIT,
                _param("state", "Only groups in this state, or `all`; by default open and resolved ones "
                                "(ignored ones are left out).",
                       {"type": "string", "enum": ["open", "resolved", "ignored", "all"]}),
            ], _list_of("groups", _GROUP_ROW)),
            "/api/errors/{group_id}": {**_get(
                "One error group with its latest event in full, recent events and logs; its events over the "
                "window (`frequency`) and by route, release and user (`breakdown`)",
                [_GROUP_ID, *_WINDOW], _GROUP, not_found="No such group"), **_post_state()},
            "/api/metrics": _get("The latest point of every metric series per service and process",
                                 [*_WINDOW, _SERVICE], _list_of("metrics", _METRIC_ROW)),
            "/api/metrics/{name}": _get(
                "One metric over time, a series per process and attribute set; cumulative counters also as "
                "a per-second `rate`",
                [_param("name", "Metric name, e.g. process.memory.usage.",
                        {"type": "string", "pattern": "^[^/\\u0000]+$"}, "path", True),
                 *_WINDOW, _SERVICE, _param("instance", "Only this process (`host:pid` or service.instance.id).")],
                _list_of("series", _SERIES, name={"type": "string"}), not_found="No metric by that name"),
            **_SERVICE_OVER_TIME,
            "/api/logs": _get("Log records, newest first: by text, level, service, logger, trace", [
                *_WINDOW, _UNTIL, _SERVICE, _LIMIT,
                _param("q", "Only records whose message contains this text (any case)."),
                _param("level", "Only records at this level or above: trace, debug, info, warn, error, fatal, "
                                "or a severity number 1 to 24.",
                       {"type": "string", "pattern": "^(trace|debug|info|warn|warning|error|fatal|critical|"
                                                     "[1-9]|1[0-9]|2[0-4])$"}),
                _param("logger", "Only records of this logger (`log.logger`) or of one below it (`app` takes "
                                 "`app.views`)."),
                _param("trace_id", "Only records of this trace: its id or the start of it.", _HEX_PREFIX),
            ], _list_of("logs", _LOG_ROW, until_ns=NULLABLE_INTEGER, more_before_ns={
                "type": ["integer", "null"],
                "description": f"By text or logger, a search reads the newest {LOG_SCAN_BUDGET:,} records of the window "
                               "at most: when it found fewer than `limit`, the time (unix ns) of the "
                               "oldest it read, where the next page goes on (`until`); null when it read "
                               "the whole window."})),
        },
        "components": {"responses": {
            "BadRequest": {"description": "A parameter is invalid: `error` says which and why",
                           "content": {"application/json": {"schema": _object({"error": {"type": "string"}})}}},
            "Unauthorized": {"description": "Missing or wrong API key",
                             "content": {"application/json": {"schema": _object({"error": {"type": "string"}})}}},
            "NotFound": {"description": "Nothing there",
                         "content": {"application/json": {"schema": _object({"error": {"type": "string"}})}}},
        }},
    }
