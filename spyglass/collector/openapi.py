"""The OpenAPI 3.1 description of the collector's JSON API, served at ``/api/openapi.json``."""
from functools import lru_cache


def _param(name, description, schema=None, where="query", required=False):
    return {"name": name, "in": where, "required": required, "description": description,
            "schema": schema or {"type": "string"}}


_WINDOW = [
    _param("since", "Window length back from now (or from `end`): 30s, 15m, 2h, 7d. Default 1h."),
    _param("start", "Window start: unix seconds or ISO 8601 (local time without a zone)."),
    _param("end", "Window end: unix seconds or ISO 8601."),
]
_SERVICE = _param("service", "Only this service (`service.name`).")
_LIMIT = _param("limit", "At most this many items.", {"type": "integer", "minimum": 0})


def _get(summary, parameters, item_key, item_schema=None, description=""):
    properties = {"since_ns": {"type": "integer", "description": "Window start, unix ns."}}
    if item_key:
        properties[item_key] = {"type": "array", "items": item_schema or {"type": "object"}}
    return {"get": {
        "summary": summary, "description": description, "parameters": parameters,
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {
                "type": "object", "properties": properties}}}},
            "400": {"$ref": "#/components/responses/BadRequest"},
            "401": {"$ref": "#/components/responses/Unauthorized"},
        },
    }}


_LATENCY = {"requests": {"type": "integer"}, "errors": {"type": "integer"}, "error_rate": {"type": "number"},
            "p50_ms": {"type": ["number", "null"]}, "p95_ms": {"type": ["number", "null"]},
            "p99_ms": {"type": ["number", "null"]}, "max_ms": {"type": ["number", "null"]}}


@lru_cache(maxsize=1)
def openapi_document():
    return {
        "openapi": "3.1.0",
        "info": {"title": "spyglass collector API", "version": "1",
                 "description": "What `spyglass serve` derived from the OTLP it received. Times are unix "
                                "nanoseconds (`*_ns`), durations milliseconds (`*_ms`). When the collector "
                                "has an API key, send it as `Authorization: Bearer KEY`, `X-API-Key: KEY` "
                                "or as the password of Basic auth."},
        "paths": {
            "/api/health": {"get": {"summary": "Liveness, schema version, and the store: backend, location, limits",
                                    "responses": {"200": {"description": "OK"}}}},
            "/api/services": _get("Services: requests, error rate, latency percentiles, instances",
                                  _WINDOW, "services", {"type": "object", "properties": {
                                      "service": {"type": "string"}, "instances": {"type": "integer"},
                                      "last_seen_ns": {"type": ["integer", "null"]}, **_LATENCY}}),
            "/api/routes": _get("Per service and route: requests, error rate, p50/p95/p99; slowest p95 first",
                                [*_WINDOW, _SERVICE], "routes", {"type": "object", "properties": {
                                    "service": {"type": "string"}, "method": {"type": ["string", "null"]},
                                    "route": {"type": "string"}, "name": {"type": "string"},
                                    "total_ms": {"type": "number"}, **_LATENCY}}),
            "/api/traces": _get("Requests (local root spans), newest first", [
                *_WINDOW, _SERVICE, _LIMIT,
                _param("route", "Only this route (`http.route`) or root span name."),
                _param("status", "HTTP status: a code (404), a class (5xx) or `error`."),
                _param("min_duration_ms", "Only requests at least this long.", {"type": "number"}),
                _param("errors", "`1` for failed requests only.", {"type": "boolean"}),
            ], "traces"),
            "/api/traces/{trace_id}": {"get": {
                "summary": "One trace: spans with parent links, attributes, events; its logs and errors",
                "parameters": [_param("trace_id", "32 hex digits.", where="path", required=True)],
                "responses": {"200": {"description": "OK"}, "404": {"description": "No such trace"}}}},
            "/api/slow-calls": _get("Calls grouped by normalized statement or operation", [
                *_WINDOW, _SERVICE, _LIMIT,
                _param("sort", "Rank by `total` time (default), `count` or `p95`.",
                       {"type": "string", "enum": ["total", "count", "p95"]}),
            ], "calls"),
            "/api/profile": _get(
                "Stacks by samples (a flame graph's data): a trace's, a route's requests' "
                "or a service's process-wide profiles", [
                    *_WINDOW, _SERVICE, _LIMIT,
                    _param("trace_id", "The trace's profile (32 hex digits); the window does "
                                       "not apply."),
                    _param("route", "The profiles of this route's (or root span name's) "
                                    "requests in the window."),
                ], "stacks", {"type": "object", "properties": {
                    "frames": {"type": "array", "items": {"type": "string"},
                               "description": "Outermost first."},
                    "samples": {"type": "integer"}}},
                "Give trace_id, route or service. `samples` in the answer counts all the "
                "matching samples, also those of stacks beyond `limit`."),
            "/api/errors": _get("Error groups by fingerprint, most recently seen first",
                                [*_WINDOW, _SERVICE, _LIMIT], "groups"),
            "/api/errors/{group_id}": {"get": {
                "summary": "One error group with its latest event in full, recent events and logs",
                "parameters": [_param("group_id", "The group's id.", {"type": "integer"}, "path", True)],
                "responses": {"200": {"description": "OK"}, "404": {"description": "No such group"}}}},
            "/api/metrics": _get("The latest point of every metric series per service and process",
                                 [*_WINDOW, _SERVICE], "metrics"),
            "/api/metrics/{name}": {"get": {
                "summary": "One metric over time, a series per process and attribute set; cumulative "
                           "counters also as a per-second `rate`",
                "parameters": [_param("name", "Metric name, e.g. process.memory.usage.", where="path",
                                      required=True), *_WINDOW, _SERVICE,
                               _param("instance", "Only this process (`host:pid` or service.instance.id).")],
                "responses": {"200": {"description": "OK"}}}},
        },
        "components": {"responses": {
            "BadRequest": {"description": "A parameter is invalid", "content": {"application/json": {
                "schema": {"type": "object", "properties": {"error": {"type": "string"}}}}}},
            "Unauthorized": {"description": "Missing or wrong API key"},
        }},
    }
