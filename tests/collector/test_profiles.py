"""Profiles in the collector: OTLP profiles requests (protobuf and JSON, built with
opentelemetry-proto) stored per trace and per service on each backend, kept as long as
spans, refused with a reason when malformed, and shown: ``/api/profile``, flame graphs
on the trace and profile pages, ``spyglass report --profile``."""
import json
import subprocess
import sys
import time

from google.protobuf import json_format
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest, ExportProfilesServiceResponse)

from spyglass.collector import otlp_profiles
from spyglass.collector.otlp_json import decode

from . import payloads
from .conftest import REPO

NS = 1_000_000_000
PROFILES = "/v1development/profiles"


def profiles_request(service, samples, time_ns=None):
    """One request: ``samples`` are (stack as function names outermost first, count,
    trace id hex or None, span id hex or None)."""
    request = ExportProfilesServiceRequest()
    table = request.dictionary
    table.string_table.append("")
    for name in ("mapping_table", "location_table", "function_table", "link_table",
                 "attribute_table", "stack_table"):
        getattr(table, name).add()
    strings, functions = {"": 0}, {}

    def string(text):
        if text not in strings:
            strings[text] = len(table.string_table)
            table.string_table.append(text)
        return strings[text]

    def location(name):
        if name not in functions:
            table.function_table.add(name_strindex=string(name), filename_strindex=string("/srv/app.py"),
                                     start_line=10 + len(functions))
            table.location_table.add().lines.add(function_index=len(table.function_table) - 1)
            functions[name] = len(table.location_table) - 1
        return functions[name]

    resource_profiles = request.resource_profiles.add()
    resource_profiles.resource.attributes.add(key="service.name").value.string_value = service
    profile = resource_profiles.scope_profiles.add().profiles.add(
        time_unix_nano=time_ns or time.time_ns(), duration_nano=NS)
    for frames, count, trace_id, span_id in samples:
        outermost_first = [location(name) for name in frames]
        table.stack_table.add(location_indices=outermost_first[::-1])  # the leaf first
        link_index = 0
        if trace_id:
            table.link_table.add(trace_id=bytes.fromhex(trace_id), span_id=bytes.fromhex(span_id))
            link_index = len(table.link_table) - 1
        profile.samples.add(stack_index=len(table.stack_table) - 1, link_index=link_index,
                            values=[count])
    return request


def stacks_of(profile):
    return {tuple(stack["frames"]): stack["samples"] for stack in profile["stacks"]}


def label(name, line):
    return f"{name} (app.py:{line})"


def test_profiles_are_stored_per_trace_route_and_service_and_kept_as_spans(make_store):
    store = make_store(retention_seconds=3600)
    now = time.time_ns()
    trace_id, spans = payloads.request_trace("shop", "/cart/{id}", start_ns=now - NS, duration_ms=300)
    store.write(decode("traces", payloads.json_bytes(payloads.traces("shop", spans))))
    root = spans[0]["spanId"]
    store.write(otlp_profiles.PROTOBUF.decode("profiles", profiles_request("shop", [
        (["main", "handle", "render"], 12, trace_id, root),
        (["main", "handle"], 3, trace_id, root),
    ], now - NS).SerializeToString()))
    store.write(otlp_profiles.PROTOBUF.decode("profiles", profiles_request("shop", [
        (["main", "idle_loop"], 40, None, None),
    ], now - NS).SerializeToString()))
    old = now - 2 * 3600 * NS
    store.write(otlp_profiles.PROTOBUF.decode("profiles", profiles_request("shop", [
        (["main", "long_ago"], 5, None, None)], old).SerializeToString()))

    render = (label("main", 10), label("handle", 11), label("render", 12))
    trace = store.profile(trace_id=trace_id)
    assert trace["samples"] == 15 and stacks_of(trace) == {render: 12, render[:2]: 3}
    route = store.profile(route="/cart/{id}", service="shop", since_ns=now - 60 * NS)
    assert stacks_of(route) == stacks_of(trace)
    assert store.profile(route="GET /cart/{id}", since_ns=now - 60 * NS)["samples"] == 15
    service = store.profile(service="shop", since_ns=now - 60 * NS)
    assert stacks_of(service) == {(label("main", 10), label("idle_loop", 11)): 40}
    assert store.profile(service="shop", since_ns=0)["samples"] == 45
    store.apply_retention(now)
    assert store.profile(service="shop", since_ns=0)["samples"] == 40  # the old one is gone
    assert store.profile(trace_id=trace_id)["samples"] == 15


def test_serve_takes_protobuf_and_json_refuses_garbage_and_shows_flame_graphs(start_collector):
    collector = start_collector()
    trace_id, spans = payloads.request_trace("flames", "/report", duration_ms=400)
    assert collector.post_json("traces", payloads.traces("flames", spans))[0] == 200
    request = profiles_request("flames", [(["main", "view", "render_report"], 20, trace_id,
                                           spans[0]["spanId"])])
    status, headers, body = collector.request("POST", PROFILES, request.SerializeToString(),
                                              {"Content-Type": "application/x-protobuf"})
    assert status == 200 and ExportProfilesServiceResponse.FromString(body).partial_success.rejected_profiles == 0
    as_json = json_format.MessageToJson(profiles_request("flames", [(["main", "tick"], 7, None, None)]))
    status, _, body = collector.request("POST", PROFILES, as_json.encode(),
                                        {"Content-Type": "application/json"})
    assert status == 200, body

    for content_type, garbage in (("application/x-protobuf", b"\xff\xff\xff"),
                                  ("application/json", b'{"resourceProfiles": 7}')):
        status, _, body = collector.request("POST", PROFILES, garbage, {"Content-Type": content_type})
        assert status == 400 and b"profiles request" in body
    broken = profiles_request("flames", [(["main"], 1, None, None)])
    broken.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].stack_index = 99
    status, _, body = collector.request("POST", PROFILES, broken.SerializeToString(),
                                        {"Content-Type": "application/x-protobuf"})
    partial = ExportProfilesServiceResponse.FromString(body).partial_success
    assert status == 200 and partial.rejected_profiles == 1 and "stack 99" in partial.error_message

    assert collector.api("/profile", trace_id=trace_id)["samples"] == 20
    assert collector.api("/profile", service="flames")["samples"] == 7
    status, _, body = collector.request("GET", "/api/profile")
    assert status == 400 and "trace_id, route or service" in json.loads(body)["error"]
    status, _, page = collector.request("GET", f"/traces/{trace_id}")
    assert status == 200 and page.count(b'class="flame-box"') == 3
    assert b"render_report (app.py:12)" in page
    status, _, page = collector.request("GET", "/profile?service=flames&route=/report")
    assert status == 200 and page.count(b'class="flame-box"') == 3

    report = subprocess.run([sys.executable, "-m", "spyglass.cli", "report", "--url", collector.url,
                             "--profile", "GET /report", "--width", "100"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    hottest = report.stdout.split("HOTTEST FUNCTIONS")[1].splitlines()[2]
    assert "render_report (app.py:12)" in hottest and "100.0%" in hottest


def test_samples_that_refer_to_no_entry_are_refused_alone():
    request = profiles_request("x", [(["a"], 1, None, None), (["b"], 2, None, None)])
    request.dictionary.ClearField("function_table")
    batch = otlp_profiles.PROTOBUF.decode("profiles", request.SerializeToString())
    assert batch.profiles == [] and batch.rejected == 2 and "function" in batch.rejected_reason


def test_uint64_times_and_counts_past_int64_are_kept_within_it():
    request = profiles_request("x", [(["a"], (1 << 62), None, None), (["a"], (1 << 62) + 5, None, None)],
                               time_ns=(1 << 64) - 1)
    request.resource_profiles[0].resource.attributes.add(key="ratio").value.double_value = float("nan")
    batch = otlp_profiles.PROTOBUF.decode("profiles", request.SerializeToString())
    [(time_ns, *_, count)] = batch.profiles
    assert time_ns == count == (1 << 63) - 1 and not batch.rejected
    assert json.loads(next(iter(batch.resources.values())).attributes)["ratio"] == "NaN"
