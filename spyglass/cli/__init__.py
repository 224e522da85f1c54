"""The ``spyglass`` command (``python -m spyglass.cli``): the collector's commands
(``collector``: serve, report), the sensor's (``sensor``: run, makeini, testini, check)
and ``demo``.

Each subcommand is a ``Command`` in ``COMMANDS``: a function that adds its arguments to
its parser and a function that runs it and returns the exit status. To add one, write
those two functions and append a row. Subcommands import what they need when they run,
so ``spyglass --help`` stays instant and the CLI never loads the collector's
dependencies for the sensor's commands (or the reverse).
"""
import argparse
import sys
from typing import Callable, NamedTuple

from . import collector, sensor


class Command(NamedTuple):
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _demo_arguments(parser):
    parser.add_argument("--no-wait", action="store_true",
                        help="end after the report instead of serving the UI until Ctrl-C")
    parser.add_argument("--port", type=int, default=0,
                        help="the collector's (and UI's) port (default: a free one)")
    parser.add_argument("--app-dir", help="where uwsgi_examples is (default: found from the "
                                          "current directory or the source checkout)")


def _demo(args):
    from .demo import demo_command  # its imports (urllib, subprocess, …) are not small

    return demo_command(args)


COMMANDS = [
    Command("serve", "run the embedded OTLP collector with its web UI",
            collector.serve_arguments, collector.serve_command),
    Command("report", "print a summary of what a collector received",
            collector.report_arguments, collector.report_command),
    Command("run", "run a command with the sensor bootstrapped (spyglass run -- python app.py)",
            sensor.run_arguments, sensor.run_command),
    Command("makeini", "write a commented ini file with every setting",
            sensor.makeini_arguments, sensor.makeini_command),
    Command("testini", "validate an ini file and send test telemetry with it",
            sensor.testini_arguments, sensor.testini_command),
    Command("check", "validate this environment's configuration and send test telemetry",
            sensor.check_arguments, sensor.check_command),
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
