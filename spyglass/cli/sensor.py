"""The sensor's side of the ``spyglass`` command: run, makeini, testini, check.

Each has an ``*_arguments(parser)`` and a ``*_command(args) -> exit status`` that
``spyglass.cli`` lists in its table.
"""
import argparse
import os
import sys
import textwrap
import time

from .. import config as config_module
from ..bootstrap import GROUPS


# -- spyglass run ------------------------------------------------------------------------

def run_arguments(parser):
    parser.add_argument("--groups", default="spyglass",
                        help="autowrapt groups to bootstrap, comma-separated "
                             f"({', '.join(GROUPS)}; default %(default)s)")
    parser.add_argument("--trace", action="store_true",
                        help="make the whole run one trace (for short programs: a script, "
                             "a cron job); sets SPYGLASS_TRACE_RUN=true")
    # Everything from the first word that is not one of run's options is the command, its
    # own options included: `spyglass run python -m app --port 8000` needs no `--`.
    parser.add_argument("argv", nargs=argparse.REMAINDER, metavar="CMD ...",
                        help="the command to run: spyglass run python app.py (or after --)")


def run_command(args):
    """Exec CMD with the sensor bootstrapped, as ``ddtrace-run`` does."""
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        return _fail("run", f"unknown group {', '.join(unknown) or '(none)'}; "
                            f"choose from {', '.join(GROUPS)}")
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        return _fail("run", "give the command to run: spyglass run python app.py")
    env = dict(os.environ, AUTOWRAPT_BOOTSTRAP=",".join(groups), SPYGLASS_LAUNCHER="spyglass run")
    if args.trace:
        env["SPYGLASS_TRACE_RUN"] = "true"
    try:
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        return _fail("run", f"command not found: {argv[0]} (is it on PATH?)")
    except OSError as exc:
        return _fail("run", f"cannot run {argv[0]}: {exc.strerror}")


# -- spyglass makeini --------------------------------------------------------------------

def makeini_arguments(parser):
    parser.add_argument("file", help="the ini file to write")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")


def makeini_command(args):
    if os.path.exists(args.file) and not args.force:
        return _fail("makeini", f"{args.file} exists; use --force to overwrite it")
    try:
        with open(args.file, "w", encoding="utf-8") as handle:
            handle.write(ini_template())
    except OSError as exc:
        return _fail("makeini", f"cannot write {args.file}: {exc.strerror}")
    print(f"wrote {args.file}: every setting, commented out at its default; uncomment "
          f"what you set, point SPYGLASS_INI at it, and check it with: spyglass testini "
          f"{args.file}")
    return 0


def ini_template() -> str:
    """Every key of ``config.KEYS`` with its meaning, commented out at its default: only
    the lines a person uncomments set anything, so the environment and the OTEL_*
    variables still apply to the rest."""
    lines = [
        "# spyglass configuration. Point SPYGLASS_INI at this file, or pass it to",
        "# spyglass.init(config_file=...). Every setting is listed commented out, at its",
        "# default: uncomment (remove the '; ') the ones you set. A value set here wins over",
        "# OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_* and OTEL_RESOURCE_ATTRIBUTES; the",
        "# environment's SPYGLASS_<KEY> variables win over it. See Configuration.md.",
        "",
        f"[{config_module.INI_SECTION}]",
    ]
    for key in config_module.KEYS:
        lines.append("")
        for line in textwrap.wrap(key.doc.replace("`", ""), 88):
            lines.append(f"# {line}")
        lines.append(f"# ({key.type_name}; environment: {key.env})")
        lines.append(f"; {key.ini} = {config_module.format_key_default(key)}")
    return "\n".join(lines) + "\n"


# -- spyglass testini / check ------------------------------------------------------------

def testini_arguments(parser):
    parser.add_argument("file", help="the ini file to validate and test")
    parser.add_argument("--no-send", action="store_true", help="only validate, send nothing")


def testini_command(args):
    if not os.path.isfile(args.file):
        return _fail("testini", f"no such file: {args.file}")
    return _check(args.file, send=not args.no_send)


def check_arguments(parser):
    parser.add_argument("--no-send", action="store_true", help="only validate, send nothing")


def check_command(args):
    """The configuration this environment gives (SPYGLASS_INI, SPYGLASS_*, OTEL_*)."""
    return _check(None, send=not args.no_send)


def _check(path, send):
    import logging

    quiet = logging.getLogger("spyglass")
    level, quiet.level = quiet.level, logging.CRITICAL  # problems are printed below instead
    try:
        config = config_module.load(config_file=path)
    finally:
        quiet.level = level
    problems = config.problems  # unknown SPYGLASS_* variables among them
    print("effective configuration:")
    width = max(len(key.name) for key in config_module.KEYS)
    for key in config_module.KEYS:
        value = config_module.format_value(key, config.get(key.name))
        if key.name == "headers" and config.headers:
            value = ",".join(f"{name}=***" for name in config.headers)
        print(f"  {key.name:<{width}}  {value or '(empty)':<24} [{config.sources[key.name]}]")
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for source, name, message in problems:
            print(f"  {source}: {name + ': ' if name else ''}{message}")
    if not send:
        return 1 if problems else 0
    print(f"\nsending a test trace, metric and log record to {config.endpoint} …")
    failure = send_test_telemetry(config)
    if failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    return 1 if problems else 0


def send_test_telemetry(config):
    """One request to each OTLP path; None on success, else what went wrong and what to do."""
    import gzip

    import httpx

    from ..report import encode, otlp
    from ..report.resource import SDK_VERSION, resource_attributes
    from ..trace.tracer import Tracer

    spans = []
    tracer = Tracer(export=spans.append)
    with tracer.start_active_span("spyglass testini") as scope:
        scope.span.set_tag("spyglass.test", True)
    resource = resource_attributes(config)
    now = time.time_ns()
    bodies = {
        "/v1/traces": encode.traces_body(resource, spans),
        "/v1/metrics": encode.metrics_body(resource, [otlp.gauge_metric(
            "spyglass.test", "1", "connectivity test", [otlp.number_point(1, now)])]),
        "/v1/logs": encode.logs_body(resource, [otlp.log_record(
            now, 9, "INFO", "spyglass connectivity test", {"spyglass.test": True})]),
    }
    headers = {**config.headers, "content-type": "application/json",
               "content-encoding": "gzip", "user-agent": f"spyglass/{SDK_VERSION}"}
    with httpx.Client(timeout=config.timeout, headers=headers) as client:
        for path, payload in bodies.items():
            url = config.endpoint + path
            started = time.perf_counter()
            try:
                response = client.post(url, content=gzip.compress(payload))
            except httpx.TimeoutException:
                return (f"{url}: no answer within {config.timeout}s (timeout). Is the collector "
                        "overloaded, or a firewall dropping packets? Raise spyglass.timeout if needed.")
            except httpx.ConnectError as exc:
                return _describe_connect_error(url, exc)
            except httpx.HTTPError as exc:
                return f"{url}: {exc}"
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code >= 300:
                return f"{url}: HTTP {response.status_code} {response.reason_phrase}. " + \
                    _advice_for_status(response.status_code)
            print(f"  {path:<12} ok  HTTP {response.status_code}  {elapsed:.1f} ms round trip")
    print("ok: the endpoint accepts traces, metrics and logs")
    return None


def _describe_connect_error(url, exc):
    text = str(exc).lower()
    if "refused" in text:
        return (f"{url}: connection refused: nothing listens there. Start the collector "
                "(spyglass serve) or set spyglass.endpoint to where it runs.")
    if "name or service not known" in text or "nodename nor servname" in text \
            or "name resolution" in text:
        return f"{url}: unknown host: check the host name in spyglass.endpoint."
    if "unreachable" in text:
        return f"{url}: network unreachable: check the address and routes/firewall."
    return f"{url}: cannot connect ({exc}). Check spyglass.endpoint."


def _advice_for_status(status):
    if status in (401, 403):
        return "The collector refused the credentials: set the API key in spyglass.headers."
    if status == 404:
        return ("No OTLP receiver at that path: spyglass.endpoint is the base URL, "
                "without /v1/traces.")
    if status == 413:
        return "The payload is over the collector's size limit: lower spyglass.batch_size."
    if status == 429 or status >= 500:
        return "The collector is overloaded or failing: try again, or check its logs."
    return "Check the collector's logs."


def _fail(command, message):
    print(f"spyglass {command}: {message}", file=sys.stderr)
    return 2


# (name, help, add_arguments, run): rows of spyglass.cli's table.
COMMANDS = [
    ("run", "run a command with the sensor bootstrapped (spyglass run python app.py)",
     run_arguments, run_command),
    ("makeini", "write a commented ini file with every setting", makeini_arguments,
     makeini_command),
    ("testini", "validate an ini file and send test telemetry with it", testini_arguments,
     testini_command),
    ("check", "validate this environment's configuration and send test telemetry",
     check_arguments, check_command),
]
