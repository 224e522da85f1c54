"""OTLP profiles as protobuf: ``ExportProfilesServiceRequest`` bodies
(``opentelemetry.proto.profiles.v1development``), written by hand.

A small writer of varints and length-delimited fields keeps the ``protobuf`` package off
the sensor (it is the collector's). The bytes are what protobuf itself would write for the
same message (fields in number order, scalars packed, proto3 defaults left out):
``tests/test_profiling.py`` parses every body the sensor sends with ``opentelemetry-proto``
and serializes it back to the same bytes.

One request carries the profiles of a batch under one resource and one dictionary (the
strings, functions, locations, stacks, links and attributes they share; entry 0 of each
table its zero value, as the schema asks). A trace's profile has one Sample per stack,
span and state, with the time of each observation; the process-wide one counts by stack.
"""
import os
import struct

# -- the writer --------------------------------------------------------------------------

_VARINT, _FIXED64, _LENGTH = 0, 1, 2
_pack_fixed64 = struct.Struct("<Q").pack
_pack_double = struct.Struct("<d").pack


def _varint(out, value):
    value &= (1 << 64) - 1  # negative int64: two's complement, as protobuf writes it
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _key(out, field, wire_type):
    _varint(out, (field << 3) | wire_type)


def _uint(out, field, value):
    """An int32/int64/uint64 field (left out when 0)."""
    if value:
        _key(out, field, _VARINT)
        _varint(out, value)


def _fixed64(out, field, value):
    if value:
        _key(out, field, _FIXED64)
        out += _pack_fixed64(value)


def _length_delimited(out, field, data):
    """A message, string or bytes field, written even when empty (presence)."""
    _key(out, field, _LENGTH)
    _varint(out, len(data))
    out += data


def _bytes(out, field, data):
    if data:
        _length_delimited(out, field, data)


def _packed_varints(out, field, values):
    if values:
        inner = bytearray()
        for value in values:
            _varint(inner, value)
        _length_delimited(out, field, inner)


def _packed_fixed64(out, field, values):
    if values:
        _length_delimited(out, field, b"".join(map(_pack_fixed64, values)))


def _text(value):
    return value.encode("utf-8", "replace")


# -- common.v1: AnyValue, KeyValue, Resource, InstrumentationScope --------------------------

def _any_value(value) -> bytearray:
    """An AnyValue; the member of its oneof is written even when it is a default."""
    out = bytearray()
    kind = value.__class__
    if kind is bool:
        _key(out, 2, _VARINT)
        _varint(out, int(value))
    elif kind is int and -(1 << 63) <= value < (1 << 63):
        _key(out, 3, _VARINT)
        _varint(out, value)
    elif kind is float:
        _key(out, 4, _FIXED64)
        out += _pack_double(value)
    elif kind is bytes:
        _length_delimited(out, 7, value)
    elif isinstance(value, (list, tuple)):
        array = bytearray()
        for item in value:
            _length_delimited(array, 1, _any_value(item))
        _length_delimited(out, 5, array)
    else:
        _length_delimited(out, 1, _text(value if kind is str else str(value)))
    return out


def _key_value(key, value) -> bytearray:
    out = bytearray()
    _bytes(out, 1, _text(key))
    _length_delimited(out, 2, _any_value(value))
    return out


def _resource(attributes) -> bytearray:
    out = bytearray()
    for key, value in attributes.items():
        _length_delimited(out, 1, _key_value(str(key), value))
    return out


def _scope() -> bytearray:
    from ..report.resource import SDK_VERSION

    out = bytearray()
    _bytes(out, 1, b"spyglass")
    _bytes(out, 2, _text(SDK_VERSION))
    return out


# -- the dictionary -----------------------------------------------------------------------

class Dictionary:
    """The tables a request's profiles index into, each entry once, entry 0 its zero
    value; ``size`` is what they weigh encoded (to bound a request)."""

    def __init__(self):
        self.strings = {"": 0}
        # id(code object) -> index in function_table (= location_table): the samples being
        # encoded hold the codes; a code object's hash is recomputed, deep, at each call.
        self.functions = {}
        self.stacks = {(): 0}
        self.links = {(0, 0): 0}
        self.attributes = {None: 0}
        self._tables = {name: [b""] for name in ("functions", "locations", "links",
                                                 "attributes", "stacks")}
        self.size = 16

    def _add(self, table, entry):
        self._tables[table].append(entry)
        self.size += len(entry) + 3
        return len(self._tables[table]) - 1

    def string(self, text):
        index = self.strings.get(text)
        if index is None:
            index = self.strings[text] = len(self.strings)
            self.size += len(text) + 3
        return index

    def location(self, code):
        """One location per function: a sample says which functions, not which lines."""
        index = self.functions.get(id(code))
        if index is None:
            function = bytearray()
            _uint(function, 1, self.string(getattr(code, "co_qualname", code.co_name)))
            _uint(function, 2, self.string(code.co_name))
            _uint(function, 3, self.string(code.co_filename))
            _uint(function, 4, code.co_firstlineno)
            index = self.functions[id(code)] = self._add("functions", function)
            line, location = bytearray(), bytearray()
            _uint(line, 1, index)
            _length_delimited(location, 3, line)
            self._add("locations", location)
        return index

    def stack(self, stack):
        index = self.stacks.get(stack)
        if index is None:
            out = bytearray()
            _packed_varints(out, 1, [self.location(code) for code in stack])
            index = self.stacks[stack] = self._add("stacks", out)
        return index

    def link(self, trace_id, span_id):
        key = (trace_id, span_id)
        index = self.links.get(key)
        if index is None:
            out = bytearray()
            _bytes(out, 1, trace_id.to_bytes(16, "big"))
            _bytes(out, 2, span_id.to_bytes(8, "big"))
            index = self.links[key] = self._add("links", out)
        return index

    def attribute(self, key, value):
        found = self.attributes.get((key, value))
        if found is None:
            out = bytearray()
            _uint(out, 1, self.string(key))
            _length_delimited(out, 2, _any_value(value))
            found = self.attributes[(key, value)] = self._add("attributes", out)
        return found

    def encode(self) -> bytearray:
        out = bytearray()
        tables = self._tables
        _length_delimited(out, 1, b"")  # mapping_table: its zero value only
        for field, name in ((2, "locations"), (3, "functions"), (4, "links")):
            for entry in tables[name]:
                _length_delimited(out, field, entry)
        for text in self.strings:  # insertion order is index order
            _length_delimited(out, 5, _text(text))
        for field, name in ((6, "attributes"), (7, "stacks")):
            for entry in tables[name]:
                _length_delimited(out, field, entry)
        return out


# -- profiles -----------------------------------------------------------------------------

def _value_type(dictionary, kind, unit) -> bytearray:
    out = bytearray()
    _uint(out, 1, dictionary.string(kind))
    _uint(out, 2, dictionary.string(unit))
    return out


def _profile(dictionary, samples, start_ns, duration_ns, period_ns, attributes) -> bytearray:
    out = bytearray()
    _length_delimited(out, 1, _value_type(dictionary, "samples", "count"))
    for sample in samples:
        _length_delimited(out, 2, sample)
    _fixed64(out, 3, start_ns)
    _uint(out, 4, duration_ns)
    _length_delimited(out, 5, _value_type(dictionary, "wall", "nanoseconds"))
    _uint(out, 6, period_ns)
    _bytes(out, 7, os.urandom(16))
    _packed_varints(out, 11, [dictionary.attribute(key, value) for key, value in attributes])
    return out


def _sample(stack_index, attribute_indices, link_index, values=(), timestamps=()):
    out = bytearray()
    _uint(out, 1, stack_index)
    _packed_varints(out, 2, attribute_indices)
    _uint(out, 3, link_index)
    _packed_varints(out, 4, values)
    _packed_fixed64(out, 5, timestamps)
    return out


def trace_profile(dictionary, item) -> bytearray:
    """A TraceProfile: one Sample per (stack, span, state), its observations' times."""
    root = item.root
    trace_id = root.trace_id
    thread = dictionary.attribute("thread.id", item.thread_id)
    states = {idle: dictionary.attribute("spyglass.thread.state", "idle" if idle else "running")
              for idle in (False, True)}
    grouped = {}
    for (when, stack, idle), span_id in zip(item.samples, _span_of_each(item)):
        key = (dictionary.stack(stack), dictionary.link(trace_id, span_id), states[idle])
        times = grouped.get(key)
        if times is None:
            grouped[key] = [when]
        else:
            times.append(when)
    samples = [_sample(stack, sorted((thread, state)), link, timestamps=times)
               for (stack, link, state), times in grouped.items()]
    return _profile(dictionary, samples, root.start_ns, root.end_ns - root.start_ns,
                    item.period_ns, (("spyglass.profile", "trace"),
                                     ("spyglass.root_name", str(root.name))))


def _span_of_each(item):
    """The id of the innermost span open at each sample's time (samples come in time
    order): a sweep over the spans by start, keeping those still open, the latest begun on
    top."""
    root = item.root
    spans = sorted(item.spans or (root,), key=lambda span: span.start_ns)
    opened = []
    position, count = 0, len(spans)
    for when, _stack, _idle in item.samples:
        while position < count and spans[position].start_ns <= when:
            opened.append(spans[position])
            position += 1
        while opened and opened[-1].end_ns < when:
            opened.pop()
        yield opened[-1].span_id if opened else root.span_id


def process_profile(dictionary, item) -> bytearray:
    samples = [_sample(dictionary.stack(stack), (), 0, values=(count,))
               for stack, count in item.counts.items()]
    return _profile(dictionary, samples, item.start_ns, item.end_ns - item.start_ns,
                    item.period_ns, (("spyglass.profile", "process"),))


def request_bodies(resource, items, max_bytes):
    """Each request body for ``items`` (TraceProfile and ProcessProfile) as (bytes, number
    of items in it): as many as keep each within about ``max_bytes`` (an item larger than
    that goes alone)."""
    head = bytearray()
    _length_delimited(head, 1, _resource(resource))
    scope = bytearray()
    _length_delimited(scope, 1, _scope())
    dictionary, profiles, size = Dictionary(), [], 0
    for item in items:
        encode = trace_profile if hasattr(item, "root") else process_profile
        profile = encode(dictionary, item)
        if profiles and size + len(profile) + dictionary.size > max_bytes:
            # Over the bound: what came before goes now; this one starts the next request,
            # encoded anew against a fresh dictionary.
            yield _request(head, scope, profiles, dictionary), len(profiles)
            dictionary, profiles, size = Dictionary(), [], 0
            profile = encode(dictionary, item)
        profiles.append(profile)
        size += len(profile)
    if profiles:
        yield _request(head, scope, profiles, dictionary), len(profiles)


def _request(head, scope, profiles, dictionary) -> bytes:
    scope_profiles = bytearray(scope)
    for profile in profiles:
        _length_delimited(scope_profiles, 2, profile)
    resource_profiles = bytearray(head)
    _length_delimited(resource_profiles, 2, scope_profiles)
    out = bytearray()
    _length_delimited(out, 1, resource_profiles)
    _length_delimited(out, 2, dictionary.encode())
    return bytes(out)
