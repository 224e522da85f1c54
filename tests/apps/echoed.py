"""For the HTTP client drivers: print what a test server echoed of one request's headers
as a JSON line, the trace headers apart from the app's own."""
import json

TRACE_HEADERS = ("traceparent", "tracestate", "baggage")


def show(name, inside, pairs, after=None):
    """``pairs``: the (name, value) header lines the server received; ``inside``: whether
    the request was made inside a span; ``after``: what the app's own object holds after."""
    pairs = [[k, v] for k, v in pairs if k.lower() != "host"]  # the port differs per run
    print(json.dumps({"name": name, "inside": inside,
                      "sent": [p for p in pairs if p[0].lower() not in TRACE_HEADERS],
                      "trace": {k.lower(): v for k, v in pairs if k.lower() in TRACE_HEADERS},
                      "after": after}))
