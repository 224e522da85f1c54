"""OTLP profiles (``/v1development/profiles``, protobuf or JSON) to a ``Batch`` of stack rows.

Both encodings are read into opentelemetry-proto's ``ExportProfilesServiceRequest`` (JSON
through protobuf's own JSON mapping), then one reader turns every Sample into a row of
``model.PROFILE_COLUMNS``: its stack as frame labels (``function (file:line)``), outermost
first, one per line; its count (the sum of its values, else its number of timestamps); and
where it links to a span, that trace and span. Rows are summed by (time, resource, trace,
span, stack) within a request: a trace's profile becomes a few rows per stack.

A Sample linked to a trace counts towards that trace (and its route); one without a link
counts towards its service, in the time bucket of its profile (spyglass sends its
process-wide profile so: every sample of a thread that was not idle). Indexes out of their
table's range reject the Sample (a partial success), not the request.
"""
import json
import os

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2

from . import otlp_json, otlp_proto
from .model import INT64_MAX, OVER_BUDGET_REASON, Batch, OverBudget, clamp_time
from .wire import BadRequest

MAX_FRAMES = 256          # the innermost frames of a stack that are kept
MAX_LABEL = 300           # characters of a frame's label
_ZERO_TRACE, _ZERO_SPAN = bytes(16), bytes(8)


class _Codec:
    """What the collector's ingest asks of a decoder, for profiles in one encoding."""

    def __init__(self, parse, base):
        self._parse = parse
        self.failure = base.failure
        self._json = base is otlp_json

    def decode(self, signal, data):
        batch = Batch()
        _read(self._parse(data), batch)
        return batch

    def success(self, signal, batch):
        response = profiles_service_pb2.ExportProfilesServiceResponse()
        if batch.rejected or batch.dropped_values:
            response.partial_success.rejected_profiles = batch.rejected
            response.partial_success.error_message = batch.message
        if self._json:
            return json.dumps(json_format.MessageToDict(response)).encode()
        return response.SerializeToString()


def _from_protobuf(data):
    try:
        return profiles_service_pb2.ExportProfilesServiceRequest.FromString(data)
    except DecodeError as exc:
        raise BadRequest(400, f"body is not a valid OTLP protobuf profiles request: {exc}") from None


def _from_json(data):
    try:
        return json_format.Parse(data, profiles_service_pb2.ExportProfilesServiceRequest(),
                                 ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, RecursionError) as exc:
        raise BadRequest(400, f"body is not a valid OTLP JSON profiles request: {exc}") from None


PROTOBUF = _Codec(_from_protobuf, otlp_proto)
JSON = _Codec(_from_json, otlp_json)


def _read(request, batch):
    labels = _Labels(request.dictionary)
    rows = {}
    for resource_profiles in request.resource_profiles:
        try:  # its attributes, as the other signals' resources: cut to size, within the budget
            resource = otlp_proto._resource(batch, resource_profiles.resource)
        except OverBudget:
            batch.reject(OVER_BUDGET_REASON, sum(len(profile.samples) for scope in resource_profiles.scope_profiles
                                                 for profile in scope.profiles))
            continue
        for scope_profiles in resource_profiles.scope_profiles:
            for profile in scope_profiles.profiles:
                for sample in profile.samples:
                    try:
                        key = (clamp_time(profile.time_unix_nano), resource.key, resource.service,
                               *labels.link(sample.link_index), labels.stack(sample.stack_index))
                    except IndexError as exc:
                        batch.reject(f"a sample refers to no entry: {exc}")
                        continue
                    count = sum(sample.values) if sample.values else len(sample.timestamps_unix_nano)
                    if count > 0:
                        rows[key] = rows.get(key, 0) + count
    batch.profiles = [(*key, min(count, INT64_MAX)) for key, count in rows.items()]


class _Labels:
    """The dictionary's stacks as text and links as hex ids, each worked out once."""

    def __init__(self, dictionary):
        self.dictionary = dictionary
        self._stacks = {}
        self._functions = {}

    def _entry(self, table, index, what):
        if not 0 <= index < len(table):
            raise IndexError(f"{what} {index} of {len(table)}")
        return table[index]

    def link(self, index):
        if not index:
            return None, None
        link = self._entry(self.dictionary.link_table, index, "link")
        if len(link.trace_id) != 16 or link.trace_id == _ZERO_TRACE:
            return None, None
        span_id = link.span_id.hex() if len(link.span_id) == 8 and link.span_id != _ZERO_SPAN else None
        return link.trace_id.hex(), span_id

    def stack(self, index):
        text = self._stacks.get(index)
        if text is None:
            table = self.dictionary
            stack = self._entry(table.stack_table, index, "stack")
            frames = []
            for location_index in stack.location_indices[:MAX_FRAMES]:
                location = self._entry(table.location_table, location_index, "location")
                frames.extend(self._function(line.function_index) for line in location.lines)
            text = self._stacks[index] = "\n".join(reversed(frames)) or "(no frames)"
        return text

    def _function(self, index):
        label = self._functions.get(index)
        if label is None:
            table = self.dictionary
            function = self._entry(table.function_table, index, "function")
            strings = table.string_table
            name = self._entry(strings, function.name_strindex, "string") or \
                self._entry(strings, function.system_name_strindex, "string") or "?"
            filename = self._entry(strings, function.filename_strindex, "string")
            if filename:
                where = os.path.basename(filename)
                name = f"{name} ({where}:{function.start_line})" if function.start_line else f"{name} ({where})"
            label = self._functions[index] = name.replace("\n", " ")[:MAX_LABEL]
        return label
