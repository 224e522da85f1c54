"""The collector's side of the ``spyglass`` command: ``serve`` (the embedded OTLP
collector and its UI) and ``report`` (a summary of what one received). Each imports the
collector only when it runs."""
import sys


def serve_arguments(parser):
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
    parser.add_argument("--threads", type=int, help="threads serving requests in each worker (default: four "
                                                    "per core, 4 to 32; env SPYGLASS_COLLECTOR_THREADS)")
    parser.add_argument("--log-level", default="WARNING", help="collector log level (default WARNING)")


def serve_command(args):
    import logging

    from spyglass.collector.config import load_config, parse_size
    from spyglass.collector.durations import parse_duration

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_config({
            "host": args.host, "port": args.port, "db": args.db, "api_key": args.api_key, "workers": args.workers,
            "threads": args.threads,
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


def report_arguments(parser):
    parser.add_argument("--url", default="http://127.0.0.1:4318", help="the collector (default %(default)s)")
    parser.add_argument("--since", default="15m", help="window to summarize: 30s, 15m, 2h, 7d (default %(default)s)")
    parser.add_argument("--service", help="only this service")
    parser.add_argument("--api-key", help="the collector's API key (env SPYGLASS_COLLECTOR_API_KEY)")
    parser.add_argument("--width", type=int, default=80, help="columns to fit (default %(default)s)")
    parser.add_argument("--profile", metavar="ROUTE", help="instead: the top stacks of this route's "
                        "requests (a route or a root span's name, e.g. 'GET /users/{id}'), from "
                        "the profiles linked to their traces")


def report_command(args):
    import os

    from spyglass.collector.report import ReportError, render_profile, render_report

    api_key = args.api_key or os.environ.get("SPYGLASS_COLLECTOR_API_KEY") or ""
    try:
        if args.profile:
            print(render_profile(args.url, args.profile, args.since, service=args.service,
                                 api_key=api_key, width=args.width))
        else:
            print(render_report(args.url, args.since, service=args.service, api_key=api_key,
                                width=args.width))
    except ValueError as exc:  # a bad --since
        print(f"spyglass report: {exc}", file=sys.stderr)
        return 2
    except ReportError as exc:
        print(f"spyglass report: {exc}", file=sys.stderr)
        return 1
    return 0


# (name, help, add_arguments, run): rows of spyglass.cli's table.
COMMANDS = [
    ("serve", "run the embedded OTLP collector with its web UI", serve_arguments, serve_command),
    ("report", "print a summary of what a collector received", report_arguments, report_command),
]
