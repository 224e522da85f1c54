"""Exception -> error event: frames, source, locals, chain, groups, fingerprint, safety."""

import gc
import json
import os
import subprocess
import sys
import textwrap
import weakref

import pytest

from spyglass.errors import build_error_event, fingerprint_of, format_stacktrace, in_app
from spyglass.redact.scrub import FILTERED, Scrubber
from spyglass.errors.event import MAX_MESSAGE, MAX_REPR, MAX_VARS, UNREPRESENTABLE

THIS_FILE = os.path.abspath(__file__)
with open(THIS_FILE, encoding="utf-8") as _source:
    SOURCE_LINES = _source.read().splitlines()


def line_of(marker):
    """1-based line number of the only source line containing ``marker``."""
    hits = [number for number, line in enumerate(SOURCE_LINES, 1)
            if marker in line and "line_of(" not in line]
    assert len(hits) == 1, hits
    return hits[0]


def caught(function, *args, **kwargs):
    try:
        function(*args, **kwargs)
    except BaseException as exc:  # noqa: B902 - the tests raise all kinds on purpose
        return exc
    raise AssertionError("did not raise")


# --- code under test: real exceptions from real frames -----------------------

def innermost(value):
    doubled = value * 2
    raise ValueError(f"bad value {doubled}")  # MARK-innermost


def middle(value):
    return innermost(value + 1)  # MARK-middle


def outermost():
    return middle(1)


def explicit_cause():
    try:
        {}["missing"]
    except KeyError as error:
        raise RuntimeError("lookup failed") from error


def implicit_context():
    try:
        1 / 0
    except ZeroDivisionError:
        raise LookupError("while handling")  # noqa: B904 - the implicit context is the point


def suppressed_context():
    try:
        1 / 0
    except ZeroDivisionError:
        raise LookupError("context hidden") from None


def three_deep():
    try:
        try:
            int("x")
        except ValueError as first:
            raise KeyError("second") from first
    except KeyError:
        raise RuntimeError("third")  # noqa: B904


def recurse(depth):
    return recurse(depth + 1)


def with_secret_local(password):
    """Its locals exist only to be reported."""
    api_key = "k-123"
    note = "mail bob@example.com"
    plain = 42
    raise PermissionError("denied")


class Unrepresentable:
    def __repr__(self):
        raise RuntimeError("repr exploded")


class Unorderable:
    """Comparing these would be a side effect beyond repr()."""
    compared = False

    def __lt__(self, other):
        Unorderable.compared = True
        raise AssertionError("reprs must not sort")

    def __hash__(self):
        return id(self)

    def __repr__(self):
        return "U"


def with_odd_locals():
    """Its locals exist only to be reported."""
    broken = Unrepresentable()
    huge_list = list(range(100_000))
    huge_bytes = b"x" * 10_000_000
    long_text = "y" * 10_000
    unsorted_dict = {Unorderable(): 1, Unorderable(): 2}
    unsorted_set = {Unorderable(), Unorderable()}
    raise TypeError("odd locals")


class Marker:
    pass


MARKERS = []


def holds_marker():
    marker = Marker()
    MARKERS.append(weakref.ref(marker))
    raise ValueError("leak check")


def raise_group():
    def member(exc):
        try:
            raise exc
        except BaseException as raised:
            return raised

    inner = ExceptionGroup("inner", [member(TypeError("t")), member(KeyError("k"))])
    raise ExceptionGroup("outer", [member(ValueError("v")), member(inner)])


def frames_named(event):
    return [frame["function"] for frame in event["frames"]]


# --- frames and source --------------------------------------------------------

def test_frames_are_ordered_innermost_last_with_positions():
    event = build_error_event(caught(outermost))

    assert event["type"] == "ValueError"
    assert event["module"] == "builtins"
    assert event["message"] == "bad value 4"
    assert frames_named(event)[-3:] == ["outermost", "middle", "innermost"]
    inner, caller = event["frames"][-1], event["frames"][-2]
    assert inner["lineno"] == line_of("MARK-innermost")
    assert caller["lineno"] == line_of("MARK-middle")
    assert inner["abs_path"] == THIS_FILE
    assert not os.path.isabs(inner["filename"]) and inner["filename"].endswith("test_errors_event.py")
    assert inner["module"] == __name__
    assert inner["in_app"] is True
    assert "vars" not in inner


def test_source_context_is_the_real_lines():
    event = build_error_event(caught(outermost), context_lines=3)
    frame = event["frames"][-1]
    index = line_of("MARK-innermost") - 1

    assert frame["context_line"] == SOURCE_LINES[index]
    assert frame["pre_context"] == SOURCE_LINES[index - 3:index]
    assert frame["post_context"] == SOURCE_LINES[index + 1:index + 4]


def test_no_context_when_disabled():
    frame = build_error_event(caught(outermost), context_lines=0)["frames"][-1]
    assert (frame["pre_context"], frame["context_line"], frame["post_context"]) == ([], None, [])


def test_library_frames_are_not_in_app_and_carry_no_source():
    json_event = build_error_event(caught(json.loads, "{"))
    from packaging.version import Version
    packaging_event = build_error_event(caught(Version, "not a version"))

    stdlib_frame = json_event["frames"][-1]
    assert stdlib_frame["filename"] == "json/decoder.py"
    assert stdlib_frame["in_app"] is False
    assert stdlib_frame["context_line"] is None and stdlib_frame["pre_context"] == []
    library_frame = packaging_event["frames"][-1]
    assert library_frame["filename"] == "packaging/version.py"
    assert library_frame["in_app"] is False
    assert json_event["frames"][0]["in_app"] is True  # the test's own frame


def test_source_unavailable_is_skipped_gracefully():
    namespace = {}
    exec(compile("def broken():\n    raise OSError('no source')\n", "/nonexistent/app.py", "exec"),
         namespace)
    frame = build_error_event(caught(namespace["broken"]))["frames"][-1]
    assert frame["abs_path"] == "/nonexistent/app.py"
    assert frame["lineno"] == 2
    assert frame["context_line"] is None


def test_exception_never_raised_has_no_frames():
    event = build_error_event(ValueError("created, not raised"), handled=True, level="warning")
    assert event["frames"] == [] and event["chain"] == [] and event["group"] == []
    assert (event["handled"], event["level"]) == (True, "warning")
    assert isinstance(event["timestamp"], float)


@pytest.mark.parametrize("module, path, include, exclude, expected", [
    ("shop.views", "/srv/app/shop/views.py", (), (), True),
    ("__main__", "/srv/app/manage.py", (), (), True),
    ("json.decoder", "/usr/lib/python3.11/json/decoder.py", (), (), False),
    ("importlib._bootstrap", "<frozen importlib._bootstrap>", (), (), False),
    ("flask.app", "/venv/lib/python3.11/site-packages/flask/app.py", (), (), False),
    ("requests.api", "/usr/lib/python3/dist-packages/requests/api.py", (), (), False),
    ("spyglass.trace.tracer", "/srv/spyglass/trace/tracer.py", (), (), False),
    ("mycompany_lib.util", "/venv/lib/python3.11/site-packages/mycompany_lib/util.py",
     ("mycompany_lib",), (), True),
    ("shop.vendored.thing", "/srv/app/shop/vendored/thing.py", (), ("shop.vendored",), False),
    ("shop.vendoredness", "/srv/app/shop/vendoredness.py", (), ("shop.vendored",), True),
    (None, None, (), (), True),
])
def test_in_app(module, path, include, exclude, expected):
    assert in_app(module, path, include, exclude) is expected


def test_in_app_include_and_exclude_reach_the_event():
    event = build_error_event(caught(outermost), in_app_exclude=[__name__])
    assert not any(frame["in_app"] for frame in event["frames"])
    event = build_error_event(caught(json.loads, "{"), in_app_include="json")
    assert event["frames"][-1]["in_app"] is True
    assert event["frames"][-1]["context_line"] is not None


# --- chain and groups -----------------------------------------------------------

def test_explicit_cause():
    event = build_error_event(caught(explicit_cause))
    assert event["type"] == "RuntimeError"
    [link] = event["chain"]
    assert (link["relation"], link["type"], link["message"]) == ("cause", "KeyError", "'missing'")
    assert link["frames"][-1]["function"] == "explicit_cause"


def test_implicit_context():
    [link] = build_error_event(caught(implicit_context))["chain"]
    assert (link["relation"], link["type"]) == ("context", "ZeroDivisionError")


def test_suppressed_context_is_left_out():
    assert build_error_event(caught(suppressed_context))["chain"] == []


def test_chain_is_nearest_first():
    chain = build_error_event(caught(three_deep))["chain"]
    assert [(link["relation"], link["type"]) for link in chain] == [
        ("context", "KeyError"), ("cause", "ValueError")]


def test_chain_cycle_and_depth_are_bounded():
    first, second = ValueError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    assert [link["message"] for link in build_error_event(first)["chain"]] == ["b"]

    head = current = RuntimeError("0")
    for number in range(1, 50):
        current.__cause__ = RuntimeError(str(number))
        current = current.__cause__
    assert len(build_error_event(head)["chain"]) == 10


def test_exception_group_members_nest():
    event = build_error_event(caught(raise_group))

    assert (event["type"], event["message"]) == ("ExceptionGroup", "outer (2 sub-exceptions)")
    value_member, inner_group = event["group"]
    assert value_member["type"] == "ValueError" and value_member["frames"]
    assert inner_group["type"] == "ExceptionGroup"
    assert [member["type"] for member in inner_group["group"]] == ["TypeError", "KeyError"]


def test_exception_groups_are_capped():
    wide = ExceptionGroup("wide", [ValueError(str(n)) for n in range(100)])
    assert len(build_error_event(wide)["group"]) == 20

    deep = ValueError("leaf")
    for level in range(20):
        deep = ExceptionGroup(f"level {level}", [deep])
    event, depth = build_error_event(deep), 0
    while event.get("group"):
        event, depth = event["group"][0], depth + 1
    assert depth <= 6


# --- recursion and size caps ------------------------------------------------------

def test_recursion_error_keeps_outermost_and_innermost_frames():
    event = build_error_event(caught(recurse, 0), max_frames=40)

    assert event["type"] == "RecursionError"
    assert len(event["frames"]) == 40
    assert frames_named(event)[0] == "caught"
    assert frames_named(event)[-1] == "recurse"


def test_message_is_capped():
    event = build_error_event(ValueError("m" * 100_000))
    assert len(event["message"]) == MAX_MESSAGE


def test_notes_join_the_message():
    error = ValueError("base")
    error.add_note("while saving order 7")
    assert build_error_event(error)["message"] == "base\nwhile saving order 7"


# --- locals ------------------------------------------------------------------------

def test_locals_are_opt_in_and_scrubbed():
    event = build_error_event(caught(with_secret_local, password="hunter2"), report_local_vars=True)
    caller, frame = event["frames"][-2:]

    assert frame["vars"] == {
        "password": FILTERED, "api_key": FILTERED,
        "note": f"'mail {FILTERED}'", "plain": "42"}
    assert caller["vars"]["kwargs"] == f"{{'password': '{FILTERED}'}}"
    assert "hunter2" not in json.dumps(event)


def test_locals_of_running_frames_are_not_read():
    try:
        outermost()
    except ValueError as error:
        event = build_error_event(error, report_local_vars=True)
    catching_frame = event["frames"][0]
    assert catching_frame["function"].endswith("test_locals_of_running_frames_are_not_read")
    assert "vars" not in catching_frame
    assert all("vars" in frame for frame in event["frames"][1:])


def test_odd_locals_are_bounded_and_never_break_the_event():
    Unorderable.compared = False
    frame = build_error_event(caught(with_odd_locals), report_local_vars=True)["frames"][-1]
    variables = frame["vars"]

    assert variables["broken"] == UNREPRESENTABLE
    assert all(len(text) <= MAX_REPR for text in variables.values())
    assert variables["huge_list"].startswith("[0, 1, 2")
    assert variables["huge_bytes"].startswith("b'xxx")
    assert variables["unsorted_dict"] == "{U: 1, U: 2}"
    assert variables["unsorted_set"] == "{U, U}"
    assert Unorderable.compared is False


def test_locals_per_frame_are_capped():
    names = [f"v{n}" for n in range(MAX_VARS + 30)]
    source = "def many():\n" + "".join(f"    {name} = {n}\n" for n, name in enumerate(names))
    source += "    raise ValueError('many')\n"
    namespace = {}
    exec(compile(source, "<generated>", "exec"), namespace)
    frame = build_error_event(caught(namespace["many"]), report_local_vars=True)["frames"][-1]
    assert list(frame["vars"]) == names[:MAX_VARS]


# --- fingerprint ---------------------------------------------------------------------

def test_fingerprint_groups_by_type_and_code_path():
    same = {build_error_event(caught(outermost))["fingerprint"] for _ in range(3)}
    assert len(same) == 1
    other_path = build_error_event(caught(explicit_cause))["fingerprint"]
    other_type = build_error_event(caught(with_secret_local, "x"))["fingerprint"]
    assert len(same | {other_path, other_type}) == 3


def test_fingerprint_ignores_messages_and_line_numbers():
    def fails(text):
        raise ValueError(text)

    assert (build_error_event(caught(fails, "order 1"))["fingerprint"]
            == build_error_event(caught(fails, "order 2"))["fingerprint"])


def test_fingerprint_uses_all_frames_when_none_is_in_app():
    in_app_fp = build_error_event(caught(json.loads, "{"))["fingerprint"]
    excluded = build_error_event(caught(json.loads, "{"), in_app_exclude=[__name__])
    assert excluded["fingerprint"] != in_app_fp
    assert excluded["fingerprint"] == fingerprint_of(excluded)


def test_custom_fingerprint_with_default_template():
    default = build_error_event(caught(outermost))
    extended = build_error_event(caught(outermost), fingerprint=["{{ default }}", "tenant-a"])
    fixed = build_error_event(caught(outermost), fingerprint=["payments"])

    assert len({default["fingerprint"], extended["fingerprint"], fixed["fingerprint"]}) == 3
    assert extended["fingerprint"] == fingerprint_of(default, custom=["{{ default }}", "tenant-a"])
    assert fixed["fingerprint"] == build_error_event(caught(explicit_cause),
                                                     fingerprint=["payments"])["fingerprint"]


def test_fingerprint_is_stable_across_processes(tmp_path):
    (tmp_path / "shop.py").write_text(textwrap.dedent("""
        def checkout():
            raise ValueError("card declined")
    """))
    script = textwrap.dedent("""
        import shop
        from spyglass.errors import build_error_event
        try:
            shop.checkout()
        except ValueError as error:
            print(build_error_event(error)["fingerprint"])
    """)
    repo = os.path.dirname(os.path.dirname(THIS_FILE))

    def run(seed):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=os.pathsep.join([repo, str(tmp_path)]))
        return subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                              capture_output=True, text=True, check=True).stdout.strip()

    first, second = run("1"), run("2")
    assert first == second and len(first) == 32


# --- safety: no leaks, no raising, JSON only --------------------------------------------

def test_event_holds_no_frames_and_is_plain_json():
    MARKERS.clear()
    try:
        holds_marker()
    except ValueError as error:
        event = build_error_event(error, report_local_vars=True)
    gc.collect()

    assert MARKERS[0]() is None, "a frame (and its locals) outlived the exception"
    assert json.loads(json.dumps(event)) == event


def test_exception_whose_str_raises():
    class Hostile(Exception):
        def __str__(self):
            raise RuntimeError("no str for you")

    event = build_error_event(caught(lambda: (_ for _ in ()).throw(Hostile())))
    assert event["type"].endswith(".Hostile")
    assert event["message"] == "<exception str() failed>"
    assert "no str for you" not in format_stacktrace(Hostile())


def test_internal_failure_gives_a_minimal_event():
    class BrokenScrubber(Scrubber):
        def text(self, text):
            raise RuntimeError("scrubber bug")

    event = build_error_event(caught(outermost), scrubber=BrokenScrubber())
    assert event["type"] == "ValueError"
    assert event["frames"] == [] and event["message"] == ""  # unscrubbed text never leaves
    assert event["fingerprint"]

    assert build_error_event(None)["type"] == "NoneType"


def test_stacktrace_text_is_scrubbed_and_capped():
    text = format_stacktrace(caught(explicit_cause))
    assert text.startswith("Traceback (most recent call last):")
    assert "direct cause" in text and text.rstrip().endswith("RuntimeError: lookup failed")

    assert format_stacktrace(PermissionError("user bob@example.com")) == (
        f"PermissionError: user {FILTERED}\n")
    long = format_stacktrace(caught(recurse, 0), limit=4000)
    assert len(long) <= 4000 and long.rstrip().endswith("maximum recursion depth exceeded")


# --- secrets in the source lines ------------------------------------------------

SECRETS = ("tok_live_5f9c2a7e", "hunter2", "Bearer-abcdef0123456789", "s3cr3tpw",
           "4111 1111 1111 1111", "multi-line-secret-value", "env-fallback-key", "annotated-pw")
APP_WITH_SECRETS = '''\
import os
API_TOKEN = "tok_live_5f9c2a7e"
DB_URL = "postgres://app:s3cr3tpw@db/shop"


def connect(url, password):
    token: str = "annotated-pw"
    raise ConnectionError("database unreachable")  # context line of the innermost frame
    api_key = os.environ.get("API_KEY", "env-fallback-key")


def checkout():
    headers = {"Authorization": "Bearer Bearer-abcdef0123456789"}
    password = "hunter2"
    if password == "hunter2":
        connect(DB_URL, password="hunter2")
    card_number = "4111 1111 1111 1111"
    SECRET = (
        "multi-line-secret-value"
    )


try:
    checkout()
except ConnectionError:
    import spyglass
    spyglass.capture_exception()
    raise
'''


def test_an_error_events_source_lines_leave_no_secret(tmp_path, receiver):
    """A real process raises next to secrets written in its code: the error event that
    reaches the receiver has every one of them masked, in every frame's pre_context,
    context_line and post_context, and nowhere else either."""
    from support.processes import clean_env

    program = tmp_path / "shop_app.py"
    program.write_text(APP_WITH_SECRETS)
    result = subprocess.run([sys.executable, str(program)], capture_output=True, text=True,
                            timeout=60, env=clean_env(AUTOWRAPT_BOOTSTRAP="runtime",
                                                      SPYGLASS_ENDPOINT=receiver.url,
                                                      SPYGLASS_METRICS_INTERVAL="0"))
    assert result.returncode == 1 and "ConnectionError: database unreachable" in result.stderr
    records = receiver.wait_for(lambda r: [record for record in r.log_records()
                                           if record["attrs"].get("event.name") == "spyglass.error"])
    event = json.loads(records[0]["body"]["stringValue"])
    frames = [frame for frame in event["frames"] if frame["abs_path"] == str(program)]
    assert [frame["function"] for frame in frames] == ["<module>", "checkout", "connect"]
    source = [line for frame in frames
              for line in frame["pre_context"] + [frame["context_line"]] + frame["post_context"]]
    everything = receiver.raw_text()
    for secret in SECRETS:
        assert not [line for line in source if secret in line], secret
        assert secret not in everything, secret  # nor in the stack trace, nor anywhere

    module, checkout, connect = frames
    assert connect["context_line"] == ('    raise ConnectionError("database unreachable")'
                                       "  # context line of the innermost frame")
    assert connect["pre_context"][-1] == f'    token: str = "{FILTERED}"'
    assert connect["post_context"][0] == f'    api_key = os.environ.get("API_KEY", "{FILTERED}")'
    assert checkout["context_line"] == f'        connect(DB_URL, password="{FILTERED}")'
    assert checkout["pre_context"][-3:] == [
        f'    headers = {{"Authorization": "{FILTERED}"}}',
        f'    password = "{FILTERED}"', f'    if password == "{FILTERED}":']
    assert checkout["post_context"] == [f'    card_number = "{FILTERED}"', "    SECRET = (",
                                        f'        "{FILTERED}"', "    )", ""]
    assert module["context_line"] == "    checkout()"
    assert receiver.schema_errors == []
