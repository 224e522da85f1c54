"""Reading the profiles a test's receiver got (parsed with opentelemetry-proto)."""


def read_profiles(receiver):
    """Each profile received as a dict: kind ("trace" or "process"), resource, root_name,
    and its samples as dicts (stack: function names, innermost first; count; trace and
    span ids in hex; state; thread)."""
    found = []
    for message, resource, profile in receiver.profiles():
        table = message.dictionary
        strings = table.string_table

        def attribute(index):
            entry = table.attribute_table[index]
            value = entry.value
            return strings[entry.key_strindex], getattr(value, value.WhichOneof("value"))

        def function_name(location_index):
            line = table.location_table[location_index].lines[0]
            return strings[table.function_table[line.function_index].name_strindex]

        attributes = dict(attribute(i) for i in profile.attribute_indices)
        samples = []
        for sample in profile.samples:
            link = table.link_table[sample.link_index]
            sample_attributes = dict(attribute(i) for i in sample.attribute_indices)
            samples.append({
                "stack": [function_name(i)
                          for i in table.stack_table[sample.stack_index].location_indices],
                "count": len(sample.timestamps_unix_nano) or sum(sample.values),
                "trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(),
                "state": sample_attributes.get("spyglass.thread.state"),
                "thread": sample_attributes.get("thread.id"),
                "times": list(sample.timestamps_unix_nano),
            })
        found.append({"kind": attributes.get("spyglass.profile"),
                      "root_name": attributes.get("spyglass.root_name"),
                      "resource": resource, "start": profile.time_unix_nano,
                      "duration": profile.duration_nano, "samples": samples})
    return found


def trace_profiles(receiver):
    return [profile for profile in read_profiles(receiver) if profile["kind"] == "trace"]


def leaf_counts(profile):
    counts = {}
    for sample in profile["samples"]:
        counts[sample["stack"][0]] = counts.get(sample["stack"][0], 0) + sample["count"]
    return counts


def hottest_leaf(profile):
    counts = leaf_counts(profile)
    return max(counts, key=counts.get)


def span_by_name(receiver):
    return {span["name"]: span for span in receiver.spans()}
