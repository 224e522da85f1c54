"""The ``spyglass`` command.

Each subcommand is a ``Command`` in ``COMMANDS``: a function that adds its arguments to
its parser and a function that runs it and returns the exit status. To add one, write
those two functions and append a row. Subcommands import what they need when they run,
so ``spyglass --help`` stays instant and the CLI never loads the collector's
dependencies for the sensor's commands (or the reverse).
"""
import argparse
import sys
from typing import Callable, NamedTuple

from . import sensor_commands


class Command(NamedTuple):
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# -- serve -------------------------------------------------------------------------------

def _serve_arguments(parser):
    parser.add_argument("--host", help="address to bind (default 127.0.0.1; env SPYGLASS_COLLECTOR_HOST)")
    parser.add_argument("--port", type=int, help="port to bind, 0 for any free one "
                                                 "(default 4318; env SPYGLASS_COLLECTOR_PORT)")
    parser.add_argument("--db", help="where to store: a SQLite file (a path or sqlite:///path; default "
                                     "$XDG_DATA_HOME/spyglass/spyglass.db) or postgresql://user@host/db "
                                     "(env SPYGLASS_COLLECTOR_DB)")
    parser.add_argument("--api-key", help="require this key from senders and readers "
                                          "(env SPYGLASS_COLLECTOR_API_KEY)")
    parser.add_argument("--max-body", metavar="SIZE", help="largest request body, as sent or inflated "
                                                           "(default 16MB; env SPYGLASS_COLLECTOR_MAX_BODY)")
    parser.add_argument("--retention", metavar="AGE", help="delete data older than this (default 7d; "
                                                           "env SPYGLASS_COLLECTOR_RETENTION)")
    parser.add_argument("--retention-size", metavar="SIZE", help="then delete the oldest data while the "
                                                                 "database is larger (default 1GB; env "
                                                                 "SPYGLASS_COLLECTOR_RETENTION_SIZE)")
    parser.add_argument("--workers", type=int, help="processes accepting requests (default: one per core, "
                                                    "up to 4; env SPYGLASS_COLLECTOR_WORKERS)")
    parser.add_argument("--log-level", default="WARNING", help="collector log level (default WARNING)")


def _serve(args):
    import logging

    from spyglass.collector.config import load_config, parse_size
    from spyglass.collector.durations import parse_duration

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_config({
            "host": args.host, "port": args.port, "db": args.db, "api_key": args.api_key, "workers": args.workers,
            "max_body_bytes": parse_size(args.max_body) if args.max_body else None,
            "retention_seconds": parse_duration(args.retention) if args.retention else None,
            "retention_bytes": parse_size(args.retention_size) if args.retention_size else None,
        })
    except ValueError as exc:
        print(f"spyglass serve: {exc}", file=sys.stderr)
        return 2
    try:
        from spyglass.collector.server import serve
        from spyglass.collector.store import StoreError
    except ImportError as exc:
        print(f"spyglass serve needs the collector extra: pip install 'spyglass[collector]' ({exc})",
              file=sys.stderr)
        return 2
    try:
        return serve(config, workers=config.workers)
    except StoreError as exc:
        print(f"spyglass serve: cannot open the database: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"spyglass serve: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}; "
              f"is another collector running there? Choose another --port.", file=sys.stderr)
        return 1


# -- report ------------------------------------------------------------------------------

def _report_arguments(parser):
    parser.add_argument("--url", default="http://127.0.0.1:4318", help="the collector (default %(default)s)")
    parser.add_argument("--since", default="15m", help="window to summarize: 30s, 15m, 2h, 7d (default %(default)s)")
    parser.add_argument("--service", help="only this service")
    parser.add_argument("--api-key", help="the collector's API key (env SPYGLASS_COLLECTOR_API_KEY)")
    parser.add_argument("--width", type=int, default=80, help="columns to fit (default %(default)s)")


def _report(args):
    import os

    from spyglass.collector.report import ReportError, render_report

    api_key = args.api_key or os.environ.get("SPYGLASS_COLLECTOR_API_KEY") or ""
    try:
        print(render_report(args.url, args.since, service=args.service, api_key=api_key, width=args.width))
    except ValueError as exc:  # a bad --since
        print(f"spyglass report: {exc}", file=sys.stderr)
        return 2
    except ReportError as exc:
        print(f"spyglass report: {exc}", file=sys.stderr)
        return 1
    return 0


def _demo_arguments(parser):
    parser.add_argument("--no-wait", action="store_true",
                        help="end after the report instead of serving the UI until Ctrl-C")
    parser.add_argument("--port", type=int, default=0,
                        help="the collector's (and UI's) port (default: a free one)")
    parser.add_argument("--app-dir", help="where uwsgi_examples is (default: found from the "
                                          "current directory or the source checkout)")


def _demo(args):
    from .demo import demo_command

    return demo_command(args)


COMMANDS = [
    Command("serve", "run the embedded OTLP collector with its web UI", _serve_arguments, _serve),
    Command("report", "print a summary of what a collector received", _report_arguments, _report),
    *(Command(*row) for row in sensor_commands.COMMANDS),
    Command("demo", "run the whole product: collector, an app under uWSGI, traffic, report",
            _demo_arguments, _demo),
]



def build_parser():
    parser = argparse.ArgumentParser(prog="spyglass", description="spyglass: zero-code APM for Python")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        subparser = subcommands.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(subparser)
        subparser.set_defaults(run=command.run)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
