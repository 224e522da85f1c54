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
    parser.add_argument("--collector", metavar="URL",
                        help="send to this running collector (spyglass serve) instead of starting one")
    parser.add_argument("--release", metavar="VERSION",
                        help="the demo app's release (service.version), e.g. to run it twice and compare")


def _demo(args):
    from .demo import demo_command  # its imports (urllib, subprocess, …) are not small

    return demo_command(args)


COMMANDS = [
    *(Command(*row) for row in collector.COMMANDS),
    *(Command(*row) for row in sensor.COMMANDS),
    Command("demo", "run the whole product: collector, an app under uWSGI, traffic, report",
            _demo_arguments, _demo),
]


def build_parser():
    from .. import __version__

    parser = argparse.ArgumentParser(prog="spyglass", description="spyglass: zero-code APM for Python")
    parser.add_argument("--version", action="version", version=f"spyglass {__version__}")
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
