"""W3C Trace Context / Baggage propagation: spec cases, limits, carriers, binary, interop."""
import email.message
import http.client
import json
import http.server
import random
import signal
import subprocess
import sys
import textwrap
import threading
import wsgiref.simple_server
from contextlib import contextmanager

import httpx
import opentracing
import pytest

from spyglass.trace.propagation import (
    RANDOM_TRACE_ID,
    SAMPLED,
    Extracted,
    TraceParent,
    extract,
    extract_baggage,
    format_baggage,
    format_traceparent,
    format_tracestate,
    from_binary,
    inject,
    parse_baggage,
    parse_traceparent,
    parse_tracestate,
    to_binary,
)
from support.processes import clean_env, run_python
from spyglass.report import encode
from spyglass.trace.tracer import Tracer

TRACE_ID_HEX = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID_HEX = "b7ad6b7169203331"
TRACE_ID = int(TRACE_ID_HEX, 16)
SPAN_ID = int(SPAN_ID_HEX, 16)
VALID = f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX}-01"


# ---------------------------------------------------------------- traceparent

@pytest.mark.parametrize(
    "header, expected",
    [
        (VALID, TraceParent(TRACE_ID, SPAN_ID, 1)),
        (f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX}-00", TraceParent(TRACE_ID, SPAN_ID, 0)),
        # Unknown flag bits are kept, not interpreted.
        (f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX}-09", TraceParent(TRACE_ID, SPAN_ID, 9)),
        (f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX}-fe", TraceParent(TRACE_ID, SPAN_ID, 0xFE)),
        # OWS around the value.
        (f" \t{VALID} \t", TraceParent(TRACE_ID, SPAN_ID, 1)),
        # Higher versions: read by the version-00 layout, extra fields after a '-'.
        (f"01-{TRACE_ID_HEX}-{SPAN_ID_HEX}-01", TraceParent(TRACE_ID, SPAN_ID, 1)),
        (f"cc-{TRACE_ID_HEX}-{SPAN_ID_HEX}-01-what-the-future-holds", TraceParent(TRACE_ID, SPAN_ID, 1)),
        (f"fe-{TRACE_ID_HEX}-{SPAN_ID_HEX}-01-", TraceParent(TRACE_ID, SPAN_ID, 1)),
        (f"00-{'0' * 31}1-{'0' * 15}1-01", TraceParent(1, 1, 1)),
        (f"00-{'f' * 32}-{'f' * 16}-01", TraceParent((1 << 128) - 1, (1 << 64) - 1, 1)),
    ],
)
def test_valid_traceparent(header, expected):
    assert parse_traceparent(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "",
        " ",
        "00",
        f"00-{'0' * 32}-{SPAN_ID_HEX}-01",  # all-zero trace id
        f"00-{TRACE_ID_HEX}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE_ID_HEX}-{SPAN_ID_HEX}-01",  # forbidden version
        f"00-{TRACE_ID_HEX.upper()}-{SPAN_ID_HEX}-01",  # uppercase trace id
        f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX.upper()}-01",  # uppercase parent id
        f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX}-0A",  # uppercase flags
        f"0A-{TRACE_ID_HEX}-{SPAN_ID_HEX}-01",  # uppercase version
        f"00-{TRACE_ID_HEX[:-1]}-{SPAN_ID_HEX}-01",  # trace id too short
        f"00-{TRACE_ID_HEX}0-{SPAN_ID_HEX}-01",  # trace id too long
        f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX[:-1]}-01",  # parent id too short
        f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX}0-01",  # parent id too long
        f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX}-1",  # flags too short
        f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX}-011",  # flags too long
        f"0-{TRACE_ID_HEX}-{SPAN_ID_HEX}-01",  # version too short
        f"000-{TRACE_ID_HEX}-{SPAN_ID_HEX}-01",  # version too long
        f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX}-01-",  # version 00 allows nothing after
        f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX}-01-extra",
        f"01-{TRACE_ID_HEX}-{SPAN_ID_HEX}-01extra",  # future version, extra not after '-'
        f"01-{TRACE_ID_HEX}-{SPAN_ID_HEX}-0",  # future version, too short
        f"00_{TRACE_ID_HEX}_{SPAN_ID_HEX}_01",  # wrong separators
        f"00-{TRACE_ID_HEX}{SPAN_ID_HEX}--01",
        f"00-{TRACE_ID_HEX[:-1]}g-{SPAN_ID_HEX}-01",  # not hex
        f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX}-0g",
        f"00-{TRACE_ID_HEX[:-2]}_1-{SPAN_ID_HEX}-01",  # int() would take '_'
        f"00--{TRACE_ID_HEX[:-1]}-{SPAN_ID_HEX}-01",  # int() would take a sign
        f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX[:-1]} -01",  # inner whitespace
        f"00 -{TRACE_ID_HEX}-{SPAN_ID_HEX}-01",
        f"{VALID},{VALID}",  # two values joined
        f"\n{VALID}",  # only SP and HTAB are OWS
        VALID.encode(),  # not text
        None,
    ],
)
def test_invalid_traceparent(header):
    assert parse_traceparent(header) is None


@pytest.mark.parametrize("sampled, flags", [(True, "01"), (False, "00")])
def test_format_traceparent(sampled, flags):
    header = format_traceparent(TRACE_ID, SPAN_ID, sampled)
    assert header == f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX}-{flags}"
    assert parse_traceparent(header) == (TRACE_ID, SPAN_ID, int(flags))


@pytest.mark.parametrize("sampled, random_trace_id, flags",
                         [(False, False, "00"), (True, False, "01"), (False, True, "02"),
                          (True, True, "03")])
def test_format_traceparent_with_the_random_trace_id_flag(sampled, random_trace_id, flags):
    header = format_traceparent(TRACE_ID, SPAN_ID, sampled, random_trace_id)
    assert header == f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX}-{flags}"
    assert parse_traceparent(header).flags & (SAMPLED | RANDOM_TRACE_ID) == int(flags, 16)


@pytest.mark.parametrize("flags, sampled, random_trace_id",
                         [("00", False, False), ("01", True, False), ("02", False, True),
                          ("03", True, True), ("09", True, False), ("fe", False, True),
                          ("ff", True, True)])
def test_extract_reads_the_sampled_and_random_trace_id_flags_as_bits(flags, sampled, random_trace_id):
    extracted = extract({"traceparent": f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX}-{flags}"})
    assert (extracted.sampled, extracted.random_trace_id) == (sampled, random_trace_id)


@pytest.mark.parametrize("flags", ["00", "01", "02", "03", "ff"])
def test_the_flags_go_out_as_they_came_the_reserved_bits_zero(flags):
    # Level 2: the random-trace-id flag MUST be carried as it came, set or unset, in all
    # outgoing traceparent headers with the same trace id; other flags MUST be zero.
    extracted = extract({"traceparent": f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX}-{flags}"})
    carrier = {}
    inject(carrier, extracted.trace_id, 0x1234, extracted.sampled,
           random_trace_id=extracted.random_trace_id)
    assert carrier["traceparent"] == f"00-{TRACE_ID_HEX}-{0x1234:016x}-{int(flags, 16) & 3:02x}"


def test_format_traceparent_pads_small_ids():
    assert format_traceparent(1, 2, True) == f"00-{'0' * 31}1-{'0' * 15}2-01"


@pytest.mark.parametrize(
    "trace_id, span_id", [(0, SPAN_ID), (TRACE_ID, 0), (1 << 128, SPAN_ID), (TRACE_ID, 1 << 64), (-1, SPAN_ID)]
)
def test_format_traceparent_refuses_ids_that_cannot_go_on_the_wire(trace_id, span_id):
    with pytest.raises(ValueError):
        format_traceparent(trace_id, span_id, True)


# ----------------------------------------------------------------- tracestate

@pytest.mark.parametrize(
    "header, expected",
    [
        ("foo=1", (("foo", "1"),)),
        ("foo=1,bar=2", (("foo", "1"), ("bar", "2"))),
        ("foo=1 \t, \t bar=2 \t", (("foo", "1"), ("bar", "2"))),  # OWS around members
        ("foo=1,,  , \t,bar=2,", (("foo", "1"), ("bar", "2"))),  # empty members ignored
        (["foo=1", "bar=2"], (("foo", "1"), ("bar", "2"))),  # several header values
        (("foo=1,bar=2", "baz=3"), (("foo", "1"), ("bar", "2"), ("baz", "3"))),
        ("tenant@system=x", (("tenant@system", "x"),)),
        ("0tenant@s=x", (("0tenant@s", "x"),)),  # a tenant id may start with a digit
        ("a_-*/0=x", (("a_-*/0", "x"),)),
        # Level 2: key = ( lcalpha / DIGIT ) 0*255 keychar, '@' a keychar like any other.
        ("1foo=1", (("1foo", "1"),)),  # a key may start with a digit
        ("foo@=1", (("foo@", "1"),)),
        ("f@@o=1,a@b@c=2", (("f@@o", "1"), ("a@b@c", "2"))),
        ("t@1s=v", (("t@1s", "v"),)),  # no 'system id' rules any more
        ("t@" + "s" * 15 + "=v", (("t@" + "s" * 15, "v"),)),
        ("t" * 242 + "@s=v", (("t" * 242 + "@s", "v"),)),
        ("t" * 100 + "@" + "v" * 155 + "=x", (("t" * 100 + "@" + "v" * 155, "x"),)),  # 256
        ("9" + "@" * 255 + "=x", (("9" + "@" * 255, "x"),)),
        # A duplicated key no longer spoils the header: its first (leftmost) entry is kept.
        ("foo=1,bar=2,foo=3", (("foo", "1"), ("bar", "2"))),
        (["foo=1", "foo=2"], (("foo", "1"),)),  # duplicate across header values
        ("a@b=1,a@b=1", (("a@b", "1"),)),
        ("foo= leading space ok", (("foo", " leading space ok"),)),
        ("foo=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~", (("foo", "!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~"),)),
        ("k" + "x" * 255 + "=" + "v" * 256, (("k" + "x" * 255, "v" * 256),)),  # maximum sizes
        ("t" * 241 + "@" + "s" * 14 + "=v", (("t" * 241 + "@" + "s" * 14, "v"),)),
        (",".join(f"k{i}=v" for i in range(32)), tuple((f"k{i}", "v") for i in range(32))),
        ("", ()),  # present but empty
        (" , ", ()),
    ],
)
def test_valid_tracestate(header, expected):
    assert parse_tracestate(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "Foo=1",  # uppercase key
        "@foo=1",  # a key starts with a letter or a digit
        "_foo=1",
        "fOo@bar=1",
        "foo@Bar=1",
        "foo",  # no '='
        "=1",  # empty key
        "foo=",  # empty value
        "foo=1=2",  # '=' in value
        "foo=1\x0b",  # vertical tab: neither value nor OWS
        "foo=bar\x7f",  # not printable
        "foo=bar\x00",
        "foo=caf\u00e9",  # not ASCII
        "k" + "x" * 256 + "=v",  # key too long (257 characters)
        "t" * 100 + "@" + "v" * 156 + "=x",
        "foo=" + "v" * 257,  # value too long
        "foo=1,bar",  # one invalid member spoils the header
        ",".join(f"k{i}=v" for i in range(33)),  # more than 32 members
        ",".join(["k=v"] * 33),  # duplicates count towards the 32
        None,
        [],
    ],
)
def test_invalid_tracestate(header):
    assert parse_tracestate(header) is None


def test_format_tracestate_puts_own_entry_first_replacing_the_old_one():
    entries = (("congo", "t61rcWkgMzE"), ("spy", "old"), ("rojo", "00f067aa0ba902b7"))
    assert format_tracestate(entries, "spy", "new") == "spy=new,congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert format_tracestate(entries) == "congo=t61rcWkgMzE,spy=old,rojo=00f067aa0ba902b7"
    assert format_tracestate((), "spy", "new") == "spy=new"
    assert format_tracestate(()) == ""


def test_format_tracestate_accepts_level_2_keys_and_never_repeats_one():
    entries = (("foo@", "1"), ("t" * 255 + "@", "2"), ("foo@", "3"), ("1x", "4"))
    header = format_tracestate(entries, "t@v", "own")
    assert header == f"t@v=own,foo@=1,{'t' * 255}@=2,1x=4"
    assert parse_tracestate(header) == (("t@v", "own"), ("foo@", "1"), ("t" * 255 + "@", "2"),
                                        ("1x", "4"))
    with pytest.raises(ValueError):
        format_tracestate((), "@own", "x")


def test_format_tracestate_keeps_at_most_32_members_dropping_from_the_right():
    entries = [(f"k{i}", "v") for i in range(32)]
    header = format_tracestate(entries, "spy", "1")
    assert parse_tracestate(header) == (("spy", "1"),) + tuple(entries[:31])


def test_format_tracestate_truncates_long_members_from_the_right_first():
    long_member = ("long", "x" * 200)  # 205 characters, more than 128
    entries = [("a", "1"), long_member, ("b", "2"), ("long2", "y" * 200), ("c", "3"), ("d", "z" * 120)]
    header = format_tracestate(entries, "spy", "own")
    assert len(header) <= 512
    # Dropping the rightmost long member is enough: the other long one stays.
    assert parse_tracestate(header) == (("spy", "own"), ("a", "1"), long_member, ("b", "2"), ("c", "3"), ("d", "z" * 120))


def test_format_tracestate_then_truncates_from_the_right():
    entries = [(f"k{i:02d}", "v" * 100) for i in range(10)]  # 104 characters each, none long
    header = format_tracestate(entries, "spy", "own")
    assert len(header) <= 512
    assert parse_tracestate(header) == (("spy", "own"),) + tuple(entries[:4])  # 7 + 4 * 105 = 427 < 512


def test_format_tracestate_leaves_out_invalid_and_duplicate_entries():
    entries = [("Bad", "1"), ("good", "2"), ("good", "3"), ("x", "a=b"), ("y", "")]
    assert format_tracestate(entries) == "good=2"


@pytest.mark.parametrize(
    "key, value", [("Spy", "1"), ("spy", ""), ("spy", "a,b"), ("spy", "trailing "), ("", "1"), ("spy", None)]
)
def test_format_tracestate_refuses_an_invalid_own_entry(key, value):
    with pytest.raises(ValueError):
        format_tracestate((), key, value)


# -------------------------------------------------------------------- baggage

@pytest.mark.parametrize(
    "header, expected",
    [
        ("userId=alice", {"userId": "alice"}),
        ("userId=alice,serverNode=DF%2028,isProduction=false",
         {"userId": "alice", "serverNode": "DF 28", "isProduction": "false"}),
        (" a \t= \t1 \t, b=2 ", {"a": "1", "b": "2"}),  # OWS
        ("a=1;prop1;prop2=x, b=2;p=%20", {"a": "1", "b": "2"}),  # properties ignored
        ("a=", {"a": ""}),
        ("a=b=c", {"a": "b=c"}),
        ("a=caf%C3%A9%20%E2%82%AC", {"a": "café €"}),
        ("a=%e2%82%ac", {"a": "€"}),  # lowercase escapes
        ("a=%FF%FE", {"a": "\ufffd\ufffd"}),  # not UTF-8
        ("a=100%,b=%zz,c=%4", {"a": "100%", "b": "%zz", "c": "%4"}),  # stray '%' kept
        ("a=1,a=2", {"a": "2"}),
        (["a=1", "b=2,c=3"], {"a": "1", "b": "2", "c": "3"}),
        # Invalid members are skipped one by one.
        ("a=1,no-equals,b c=2,d=x y,e=\"q\",=3,f=back\\slash,g=ok", {"a": "1", "g": "ok"}),
        ("a=caf\u00e9,b=1", {"b": "1"}),
        ("", {}),
        (",,,", {}),
        (None, {}),
        ([], {}),
    ],
)
def test_parse_baggage(header, expected):
    assert parse_baggage(header) == expected


def test_parse_baggage_reads_at_most_64_members():
    header = ",".join(f"k{i}={i}" for i in range(100))
    assert parse_baggage(header) == {f"k{i}": str(i) for i in range(64)}


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "",
        "with space",
        "comma,semicolon;quote\"backslash\\",
        "100% sure",
        "%20 is not a space",
        "a=b=c",
        "café € 日本語 🔭",
        "\t\n\r\x00\x7f",
        "+plus+",
        "x" * 1000,
    ],
)
def test_baggage_round_trip(value):
    header = format_baggage({"key": value, "other": "1"})
    assert parse_baggage(header) == {"key": value, "other": "1"}
    assert all(0x21 <= ord(c) <= 0x7E and c not in '",;\\' for c in header.replace("key=", "", 1) if c != ",")


@pytest.mark.parametrize(
    "value, encoded",
    [
        ("alice", "alice"),
        ("a/b:c?d=e&f@g[h]!*'()~", "a/b:c?d=e&f@g[h]!*'()~"),  # legal as is: left alone
        ("DF 28", "DF%2028"),
        ("a,b;c\"d\\e%f", "a%2Cb%3Bc%22d%5Ce%25f"),
        ("é", "%C3%A9"),
    ],
)
def test_format_baggage_encodes_only_what_must_be(value, encoded):
    assert format_baggage({"k": value}) == f"k={encoded}"


def test_format_baggage_leaves_out_keys_that_are_not_tokens():
    items = {"ok": "1", "bad key": "2", "bad,key": "3", "": "4", "ké": "5", 7: "6", "k=": "v", "k;p": "v"}
    assert format_baggage(items) == "ok=1"


def test_format_baggage_writes_non_text_values_as_text():
    assert parse_baggage(format_baggage({"n": 42})) == {"n": "42"}


def test_format_baggage_keeps_at_most_64_members():
    header = format_baggage({f"k{i}": "v" for i in range(100)})
    assert parse_baggage(header) == {f"k{i}": "v" for i in range(64)}


def test_format_baggage_stays_within_8192_bytes_and_fits_what_it_can():
    items = {"a": "x" * 5000, "big": "y" * 5000, "b": "z" * 3000, "c": "small"}
    header = format_baggage(items)
    assert len(header.encode()) <= 8192
    assert parse_baggage(header) == {"a": "x" * 5000, "b": "z" * 3000, "c": "small"}


def test_format_baggage_exactly_at_the_byte_limit():
    exact = {"k": "v" * (8192 - 2)}
    assert len(format_baggage(exact)) == 8192
    assert format_baggage({"k": "v" * (8192 - 1)}) == ""


def test_format_baggage_counts_the_encoded_size():
    header = format_baggage({"a": "é" * 2000, "b": "1"})  # 12000 bytes once encoded
    assert header == "b=1"


# ------------------------------------------------------------------- carriers

HEADERS = {
    "traceparent": VALID,
    "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
    "baggage": "userId=alice,serverNode=DF%2028",
}
EXPECTED = Extracted(
    TRACE_ID,
    SPAN_ID,
    True,
    (("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")),
    {"userId": "alice", "serverNode": "DF 28"},
)


def message_carrier():
    message = email.message.Message()
    message["TraceParent"] = VALID
    message["TraceState"] = "congo=t61rcWkgMzE"
    message["tracestate"] = "rojo=00f067aa0ba902b7"
    message["BAGGAGE"] = "userId=alice,serverNode=DF%2028"
    return message


@pytest.mark.parametrize(
    "carrier",
    [
        pytest.param(dict(HEADERS), id="dict"),
        pytest.param({k.upper(): v for k, v in HEADERS.items()}, id="upper"),
        pytest.param({"TraceParent": VALID, "TraceState": HEADERS["tracestate"], "Baggage": HEADERS["baggage"],
                      "Host": "example.com", "User-Agent": "test"}, id="mixed-case"),
        pytest.param({k: [v] for k, v in HEADERS.items()}, id="list-values"),
        pytest.param({"traceparent": VALID, "tracestate": ["congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7"],
                      "baggage": ["userId=alice", "serverNode=DF%2028"]}, id="multi-values"),
        pytest.param({"traceparent": VALID, "tracestate": "congo=t61rcWkgMzE", "TraceState": "rojo=00f067aa0ba902b7",
                      "baggage": HEADERS["baggage"]}, id="same-header-two-casings"),
        pytest.param(list(HEADERS.items()), id="pairs"),
        pytest.param([(k.encode(), v.encode()) for k, v in HEADERS.items()] + [(b"host", b"x")], id="asgi-bytes"),
        pytest.param({"wsgi.version": (1, 0), "REQUEST_METHOD": "GET", "HTTP_TRACEPARENT": VALID,
                      "HTTP_TRACESTATE": HEADERS["tracestate"], "HTTP_BAGGAGE": HEADERS["baggage"]}, id="wsgi-environ"),
        pytest.param({"HTTP_TRACEPARENT": VALID, "HTTP_TRACESTATE": HEADERS["tracestate"],
                      "HTTP_BAGGAGE": HEADERS["baggage"]}, id="environ-like"),
        pytest.param(message_carrier(), id="email-message"),
        pytest.param(httpx.Headers([("TraceParent", VALID), ("tracestate", "congo=t61rcWkgMzE"),
                                    ("TRACESTATE", "rojo=00f067aa0ba902b7"), ("baggage", HEADERS["baggage"])]),
                     id="httpx-headers"),
    ],
)
def test_extract_from_any_carrier(carrier):
    assert extract(carrier) == EXPECTED
    assert extract_baggage(carrier) == EXPECTED.baggage


@pytest.mark.parametrize(
    "carrier",
    [
        pytest.param({}, id="empty"),
        pytest.param({"Host": "example.com"}, id="no-trace-headers"),
        pytest.param({**HEADERS, "traceparent": VALID.upper()}, id="invalid"),
        pytest.param({**HEADERS, "traceparent": [VALID, VALID]}, id="two-values"),
        pytest.param({**HEADERS, "TraceParent": VALID}, id="two-casings"),
        pytest.param([("traceparent", VALID), ("traceparent", VALID)], id="two-pairs"),
        pytest.param({**HEADERS, "traceparent": None}, id="none-value"),
        pytest.param({**HEADERS, "traceparent": 12}, id="int-value"),
    ],
)
def test_extract_without_a_valid_traceparent_returns_none(carrier):
    assert extract(carrier) is None


def test_extract_baggage_without_a_trace_context():
    assert extract_baggage({"Baggage": "a=1"}) == {"a": "1"}
    assert extract_baggage({"traceparent": "garbage", "baggage": "a=1"}) == {"a": "1"}
    assert extract_baggage({}) == {}


def test_extract_drops_an_invalid_tracestate_but_keeps_the_context():
    extracted = extract({"traceparent": VALID, "tracestate": "a=1,A=2", "baggage": "k=v"})
    assert extracted == Extracted(TRACE_ID, SPAN_ID, True, (), {"k": "v"})


def test_level_2_tracestate_keys_and_duplicates_are_inherited_and_passed_on():
    key_256 = "k" + "@" * 100 + "x" * 155
    header = f"foo@=1,{key_256}=2,t0@v1@=3,foo@=4,0=5"
    extracted = extract({"traceparent": f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX}-03", "tracestate": header})
    assert extracted.tracestate == (("foo@", "1"), (key_256, "2"), ("t0@v1@", "3"), ("0", "5"))
    carrier = {}
    inject(carrier, TRACE_ID, 0x99, extracted.sampled, extracted.tracestate,
           random_trace_id=extracted.random_trace_id)
    assert carrier == {"traceparent": f"00-{TRACE_ID_HEX}-{0x99:016x}-03",
                       "tracestate": f"foo@=1,{key_256}=2,t0@v1@=3,0=5"}


def test_extract_tolerates_odd_values():
    carrier = {"traceparent": VALID, "tracestate": [None, b"a=1", 5], "baggage": b"k=v"}
    assert extract(carrier) == Extracted(TRACE_ID, SPAN_ID, True, (("a", "1"),), {"k": "v"})


def test_inject_into_an_empty_carrier():
    carrier = {}
    inject(carrier, TRACE_ID, SPAN_ID, True, EXPECTED.tracestate, EXPECTED.baggage)
    assert carrier == {
        "traceparent": VALID,
        "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
        "baggage": "userId=alice,serverNode=DF%2028",
    }
    assert extract(carrier) == EXPECTED


def test_inject_writes_only_headers_with_content():
    carrier = {}
    inject(carrier, TRACE_ID, SPAN_ID, False)
    assert carrier == {"traceparent": f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX}-00"}
    inject(carrier, TRACE_ID, SPAN_ID, False, (("Bad", "x"),), {"bad key": "x"})
    assert list(carrier) == ["traceparent"]


def test_inject_replaces_differently_cased_headers_in_place():
    carrier = {"Host": "example.com", "TraceParent": "old", "TRACESTATE": "old=1", "Baggage": "old=1"}
    inject(carrier, TRACE_ID, SPAN_ID, True, EXPECTED.tracestate, EXPECTED.baggage)
    assert list(carrier) == ["Host", "TraceParent", "TRACESTATE", "Baggage"]
    assert carrier["TraceParent"] == VALID
    assert carrier["TRACESTATE"] == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert carrier["Baggage"] == "userId=alice,serverNode=DF%2028"


def test_inject_removes_further_casings_of_a_header():
    carrier = {"TraceParent": "old", "traceparent": "older", "TRACEPARENT": "oldest", "x": "1"}
    inject(carrier, TRACE_ID, SPAN_ID, True)
    assert carrier == {"TraceParent": VALID, "x": "1"}


def test_inject_leaves_headers_it_does_not_write_alone():
    carrier = {"Baggage": "user=1", "HTTP_TRACEPARENT": "not a header"}
    inject(carrier, TRACE_ID, SPAN_ID, True)
    assert carrier == {"Baggage": "user=1", "HTTP_TRACEPARENT": "not a header", "traceparent": VALID}


def test_inject_into_httpx_headers_never_duplicates():
    headers = httpx.Headers({"TraceParent": "old", "Accept": "*/*"})
    inject(headers, TRACE_ID, SPAN_ID, True, baggage={"a": "b c"})
    assert headers.get_list("traceparent") == [VALID]
    assert headers.get_list("baggage") == ["a=b%20c"]
    assert extract(headers) == Extracted(TRACE_ID, SPAN_ID, True, (), {"a": "b c"})


# ------------------------------------------- the flags through spyglass's tracer

def flags_sent(context):
    carrier = {}
    Tracer().inject(context, opentracing.Format.HTTP_HEADERS, carrier)
    return carrier["traceparent"][-2:]


def otlp_flags(exported):
    spans = json.loads(encode.traces_body({}, exported))["resourceSpans"][0]["scopeSpans"][0]["spans"]
    return {span["name"]: span["flags"] for span in spans}


@pytest.mark.parametrize("rate, flags", [(1.0, "03"), (0.0, "02")])
def test_a_trace_started_here_has_the_random_trace_id_flag_whatever_the_sampling(rate, flags):
    tracer = Tracer(sample_rate=rate)
    with tracer.start_active_span("active") as scope:  # the flattened path
        assert flags_sent(scope.span.context) == flags
        assert flags_sent(tracer.start_span("child").context) == flags
    for root in (tracer.start_span("started", ignore_active_span=True),
                 tracer.start_server_span("server"), tracer.start_server_span("server", {})):
        assert flags_sent(root.context) == flags
        assert flags_sent(root.context.with_baggage_item("k", "v")) == flags


@pytest.mark.parametrize("incoming", ["00", "01", "02", "03", "ff", "fe"])
def test_a_continued_trace_carries_the_callers_flags_unchanged(incoming):
    # The sampled flag decides as before (parent-based); random-trace-id goes on as it came,
    # set or unset; the reserved bits go out as zero.
    expected = f"{int(incoming, 16) & 3:02x}"
    headers = {"traceparent": f"00-{TRACE_ID_HEX}-{SPAN_ID_HEX}-{incoming}"}
    exported = []
    tracer = Tracer(export=exported.append, sample_rate=1.0)
    server = tracer.start_server_span("server", headers)
    assert server.sampled is bool(int(incoming, 16) & 1)
    with tracer.scope_manager.activate(server, True):
        with tracer.start_active_span("inner") as scope:
            assert flags_sent(scope.span.context) == expected
    context = tracer.extract(opentracing.Format.HTTP_HEADERS, headers)
    assert flags_sent(context) == expected
    with tracer.start_active_span("continued", child_of=context) as scope:
        assert flags_sent(scope.span.context) == expected
        with tracer.start_span("child") as child:
            assert flags_sent(child.context) == expected
    binary = bytearray()
    tracer.inject(context, opentracing.Format.BINARY, binary)
    assert flags_sent(tracer.extract(opentracing.Format.BINARY, binary)) == expected
    if server.sampled:
        assert {name: flags & 0xFF for name, flags in otlp_flags(exported).items()} == {
            "server": int(expected, 16), "inner": int(expected, 16),
            "continued": int(expected, 16), "child": int(expected, 16)}
    else:
        assert exported == []


def test_the_otlp_span_flags_carry_the_random_trace_id_flag():
    # OTLP: W3C trace flags in the low 8 bits; 0x100 says whether the parent is remote
    # (0x200) is known.
    exported = []
    tracer = Tracer(export=exported.append)
    with tracer.start_active_span("new"):
        with tracer.start_active_span("new child"):
            pass
    unset = tracer.extract(opentracing.Format.HTTP_HEADERS, {"traceparent": VALID})
    with tracer.start_active_span("continued", child_of=unset):
        pass
    assert otlp_flags(exported) == {"new": 0x103, "new child": 0x103, "continued": 0x301}


# ----------------------------------------------------- over real HTTP servers

@contextmanager
def serving(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class QuietWSGIHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


def send_raw_headers(port, headers):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.putrequest("GET", "/")
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


RAW_HEADERS = [
    ("TraceParent", VALID),
    ("TraceState", "congo=t61rcWkgMzE"),  # a header sent twice
    ("tracestate", "rojo=00f067aa0ba902b7"),
    ("BAGGAGE", "userId=alice,serverNode=DF%2028"),
]


def test_extract_from_a_real_wsgi_environ():
    seen = []

    def app(environ, start_response):
        seen.append(extract(environ))
        start_response("204 No Content", [])
        return []

    server = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=QuietWSGIHandler)
    with serving(server) as port:
        assert send_raw_headers(port, RAW_HEADERS) == 204
    assert seen == [EXPECTED]


def test_extract_from_real_http_server_headers():
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(extract(self.headers))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with serving(server) as port:
        assert send_raw_headers(port, RAW_HEADERS) == 204
    assert seen == [EXPECTED]


def test_inject_into_a_real_outgoing_httpx_request():
    seen = []

    def app(environ, start_response):
        seen.append(extract(environ))
        start_response("204 No Content", [])
        return []

    server = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=QuietWSGIHandler)
    with serving(server) as port, httpx.Client() as client:
        request = client.build_request("GET", f"http://127.0.0.1:{port}/", headers={"TraceParent": "stale"})
        inject(request.headers, TRACE_ID, SPAN_ID, True, EXPECTED.tracestate, EXPECTED.baggage)
        assert client.send(request).status_code == 204
    assert seen == [EXPECTED]


# ------------------------------------------------------- across real processes

DOWNSTREAM = """
    import sys
    from wsgiref.simple_server import WSGIRequestHandler, make_server
    from flask import Flask, request

    app = Flask("downstream")

    @app.get("/echo")
    def echo():
        return request.headers.get("traceparent", "") + " " + request.headers.get("tracestate", "")

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    print(server.server_port, flush=True)
    server.serve_forever()
"""

UPSTREAM = """
    import json, os, urllib.request
    import opentracing

    tracer = opentracing.global_tracer()
    for name, headers in json.loads(os.environ["CALLERS"]):
        context = tracer.extract(opentracing.Format.HTTP_HEADERS, headers) if headers else None
        with tracer.start_active_span(name, child_of=context):
            with urllib.request.urlopen(os.environ["DOWNSTREAM"] + "/echo", timeout=10) as response:
                print(name, response.read().decode())
"""

KEY_256 = "t0" + "@" * 10 + "v" * 244
INHERITED = (("foo@", "1"), (KEY_256, "2"), ("t0@v1", "3"))
RECEIVED = f"foo@=1,{KEY_256}=2,t0@v1=3,foo@=4,t0@v1=5"
CALLERS = [
    ("new", None),
    ("unset", {"traceparent": f"00-{'1' * 32}-{'2' * 16}-01", "tracestate": RECEIVED}),
    ("set", {"traceparent": f"00-{'3' * 32}-{'4' * 16}-03", "tracestate": RECEIVED}),
]


def test_flags_and_tracestate_across_two_traced_processes(receiver):
    """A traced process calls a real HTTP server in another traced process: each trace's
    W3C flags and tracestate, as both processes exported them to the collector."""
    with subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(DOWNSTREAM)], stdout=subprocess.PIPE, text=True,
            env=clean_env(AUTOWRAPT_BOOTSTRAP="flask", SPYGLASS_ENDPOINT=receiver.url,
                          SPYGLASS_SERVICE_NAME="downstream", SPYGLASS_METRICS_INTERVAL="0")) as server:
        try:
            port = int(server.stdout.readline())
            upstream = run_python(UPSTREAM, AUTOWRAPT_BOOTSTRAP="runtime",
                                  SPYGLASS_ENDPOINT=receiver.url, SPYGLASS_SERVICE_NAME="upstream",
                                  SPYGLASS_METRICS_INTERVAL="0", CALLERS=json.dumps(CALLERS),
                                  DOWNSTREAM=f"http://127.0.0.1:{port}")
        finally:
            server.send_signal(signal.SIGTERM)  # spyglass drains, then it dies of SIGTERM
            server.wait(timeout=30)
    echoed = dict(line.split(" ", 1) for line in upstream.stdout.splitlines())
    assert receiver.wait_for(lambda r: len([s for s in r.spans() if s["kind"] == 2]) == 3)
    assert receiver.schema_errors == []
    spans = receiver.spans()
    for name, headers in CALLERS:
        root, = [s for s in spans if s["name"] == name]
        client, = [s for s in spans if s.get("parentSpanId") == root["spanId"]]
        served, = [s for s in spans if s.get("parentSpanId") == client["spanId"]]
        assert (root["resource"]["service.name"], served["resource"]["service.name"]) == (
            "upstream", "downstream")
        flags = 0x03 if headers is None else int(headers["traceparent"][-2:], 16)
        sent_traceparent, _, sent_tracestate = echoed[name].partition(" ")
        assert sent_traceparent == f"00-{root['traceId']}-{client['spanId']}-{flags:02x}"
        assert [s["flags"] & 0xFF for s in (root, client, served)] == [flags] * 3
        assert served["flags"] & 0x300 == 0x300  # its parent is remote
        if headers is None:
            assert sent_tracestate == ""
            assert "traceState" not in root and "traceState" not in served
        else:
            inherited = ",".join(f"{k}={v}" for k, v in INHERITED)
            assert sent_tracestate == inherited
            assert root["traceState"] == served["traceState"] == inherited


# ------------------------------------------------------------------ interop

def test_interop_with_opentelemetry():
    from opentelemetry import baggage as otel_baggage
    from opentelemetry import trace as otel_trace
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    # OpenTelemetry's baggage uses form encoding (quote_plus/unquote_plus), where the W3C
    # spec has plain percent-encoding: '+' means a space to it and not to us. The values
    # below avoid a literal space on its side and a literal '+' on ours.
    baggage = {"user": "café€", "n": "1,2;3%"}

    # Theirs -> ours.
    context = TraceContextTextMapPropagator().extract(HEADERS)
    context = otel_baggage.set_baggage("n", baggage["n"], context)
    context = otel_baggage.set_baggage("user", baggage["user"], context)
    theirs = {}
    TraceContextTextMapPropagator().inject(theirs, context)
    W3CBaggagePropagator().inject(theirs, context)
    assert extract(theirs) == EXPECTED._replace(baggage=baggage)

    # Ours -> theirs.
    ours = {}
    inject(ours, TRACE_ID, SPAN_ID, True, EXPECTED.tracestate, {"user": "café €", "n": "1,2;3%"})
    context = W3CBaggagePropagator().extract(ours, TraceContextTextMapPropagator().extract(ours))
    span_context = otel_trace.get_current_span(context).get_span_context()
    assert (span_context.trace_id, span_context.span_id, span_context.trace_flags.sampled) == (TRACE_ID, SPAN_ID, True)
    assert list(span_context.trace_state.items()) == list(EXPECTED.tracestate)
    assert otel_baggage.get_all(context) == {"user": "café €", "n": "1,2;3%"}


# --------------------------------------------------------------------- binary

@pytest.mark.parametrize("sampled", [True, False])
@pytest.mark.parametrize("baggage", [None, {}, {"a": "1", "user": "café €,;"}])
def test_binary_round_trip(sampled, baggage):
    data = to_binary(TRACE_ID, SPAN_ID, sampled, baggage)
    assert from_binary(data) == Extracted(TRACE_ID, SPAN_ID, sampled, (), baggage or {})
    assert from_binary(bytearray(data)) == from_binary(memoryview(data)) == from_binary(data)


def test_binary_layout_follows_the_w3c_draft():
    data = to_binary(TRACE_ID, SPAN_ID, True, None)
    assert data == bytes([0, 0]) + bytes.fromhex(TRACE_ID_HEX) + bytes([1]) + bytes.fromhex(SPAN_ID_HEX) + bytes([2, 1])
    with_baggage = to_binary(TRACE_ID, SPAN_ID, True, {"a": "1"})
    assert with_baggage == data + bytes([3, 0, 3]) + b"a=1"


def test_binary_ignores_unknown_trailing_fields():
    data = to_binary(TRACE_ID, SPAN_ID, True, {"a": "1"})
    assert from_binary(data + b"\x09whatever follows") == Extracted(TRACE_ID, SPAN_ID, True, (), {"a": "1"})


@pytest.mark.parametrize("sampled", [True, False])
@pytest.mark.parametrize("random_trace_id", [True, False])
def test_binary_carries_the_random_trace_id_flag(sampled, random_trace_id):
    data = to_binary(TRACE_ID, SPAN_ID, sampled, None, random_trace_id)
    assert data[-1] == sampled | random_trace_id << 1  # the options byte: the trace flags
    assert from_binary(data) == Extracted(TRACE_ID, SPAN_ID, sampled, (), {}, random_trace_id)


def test_binary_without_options_is_not_sampled():
    data = bytes([0, 0]) + bytes.fromhex(TRACE_ID_HEX) + bytes([1]) + bytes.fromhex(SPAN_ID_HEX)
    assert from_binary(data) == Extracted(TRACE_ID, SPAN_ID, False, (), {})


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\x01" + to_binary(TRACE_ID, SPAN_ID, True, None)[1:],  # unknown version
        bytes([0, 0]) + bytes(16) + bytes([1]) + bytes.fromhex(SPAN_ID_HEX),  # zero trace id
        bytes([0, 0]) + bytes.fromhex(TRACE_ID_HEX) + bytes([1]) + bytes(8),  # zero span id
        bytes([0, 0]) + bytes.fromhex(TRACE_ID_HEX),  # no span id
        bytes([0, 1]) + bytes.fromhex(SPAN_ID_HEX),  # no trace id
        to_binary(TRACE_ID, SPAN_ID, True, {"a": "1"})[:-1],  # baggage cut short
        to_binary(TRACE_ID, SPAN_ID, True, None) + b"\x03\x00",  # baggage length cut short
        "not bytes",
        None,
        12,
    ],
)
def test_binary_garbage_reads_as_none(data):
    assert from_binary(data) is None


def test_binary_every_truncation_is_safe():
    data = to_binary(TRACE_ID, SPAN_ID, True, {"a": "1"})
    for end in range(len(data)):
        result = from_binary(data[:end])
        assert result is None or (result.trace_id, result.span_id) == (TRACE_ID, SPAN_ID)


def test_binary_random_bytes_never_raise():
    rng = random.Random(1234)
    valid = to_binary(TRACE_ID, SPAN_ID, True, {"user": "alice", "n": "1"})
    for _ in range(20000):
        if rng.random() < 0.5:
            data = rng.randbytes(rng.randrange(64))
        else:  # mutate a valid message, to get past the first checks
            data = bytearray(valid)
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data[: rng.randrange(len(data) + 8)])
        result = from_binary(data)
        assert result is None or isinstance(result, Extracted)


def test_text_parsers_never_raise_on_random_input():
    rng = random.Random(4321)
    alphabet = "0123456789abcdefABCDEF-=,;% \t@*/_\"\\é\x00\x7f" + "\ud800"
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(80)))
        parse_traceparent(text)
        parse_tracestate(text)
        parse_baggage(text)
        extract({"traceparent": text, "tracestate": text, "baggage": text})


def test_formatting_never_emits_an_invalid_baggage_header():
    rng = random.Random(99)
    for _ in range(500):
        items = {
            "".join(rng.choice("aZ9!-_ ,;=é") for _ in range(rng.randrange(1, 6))):
            "".join(chr(rng.randrange(0x20, 0x2FF)) for _ in range(rng.randrange(12)))
            for _ in range(rng.randrange(5))
        }
        header = format_baggage(items)
        assert all(0x21 <= ord(c) <= 0x7E and c not in '"; \\' for c in header)
        tokens = {key: value for key, value in items.items() if set(key) <= set("aZ9!-_")}
        assert parse_baggage(header) == tokens
