"""The top-level parser and `main`: parse, then call the subcommand's handler."""

from __future__ import annotations

import argparse
import sys

from tracker import config as config_module
from tracker.cli import configuration, devices, notifications, quarantine, server, tools

DESCRIPTION = """Tracker: a fleet GPS tracking server (Traccar-compatible ports and API).

Configuration comes from --config FILE (TOML) and TRACKER_* environment variables;
with neither, the server uses SQLite in ./tracker.db, the web on port 8082 and every
protocol on its Traccar port (gt06 on 5023)."""

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracker", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="PATH", help="TOML configuration file")
    # --config is accepted after the command too: `tracker serve --config PATH`
    configured = argparse.ArgumentParser(add_help=False)
    configured.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                            help="TOML configuration file")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # in the order `tracker --help` lists them
    server.register(commands, configured)
    devices.register(commands, configured)
    configuration.register(commands, configured)
    notifications.register(commands, configured)
    quarantine.register(commands, configured)
    tools.register(commands, configured)
    return parser


def main(argv: list[str] | None = None) -> int:
    """`tracker ARGS`: the exit status (2 for usage errors and a bad configuration)."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except config_module.ConfigError as error:
        print(f"tracker: {error}", file=sys.stderr)
        return 2
