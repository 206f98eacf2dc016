"""`tracker serve` and `tracker migrate`.

``serve`` prints one line on stdout once every port is bound, for scripts and
tests that configure port 0::

    listening: web=8082 gt06/tcp=5023 gt06/udp=5023 osmand/http=5055

space-separated ``NAME=PORT`` pairs after ``listening:``: ``web`` first, then
``<protocol>/<transport>`` in configuration order (`TrackerServer.bound_ports`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tracker.cli.common import with_config, with_store
from tracker.config import Config


def register(commands: Any, configured: argparse.ArgumentParser) -> None:
    commands.add_parser("serve", parents=[configured],
                        help="run the server (applies migrations first)"
                        ).set_defaults(handler=with_config(serve))
    commands.add_parser("migrate", parents=[configured], help="apply database migrations and exit"
                        ).set_defaults(handler=with_store(migrate))


def listening_line(ports: list[tuple[str, int]]) -> str:
    """``listening: web=8082 gt06/tcp=5023 ...`` from `TrackerServer.bound_ports`."""
    return "listening: " + " ".join(f"{name}={port}" for name, port in ports)


def serve(args: argparse.Namespace, config: Config) -> int:
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from tracker.app import TrackerServer

    stdout = sys.stdout      # the logging below redirects sys.stdout into the log
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)])
    server = TrackerServer(config, reactor)
    try:
        server.start()
    except Exception as error:  # bind failure, unreachable database at start
        print(f"tracker: cannot start: {error}", file=sys.stderr)
        return 1
    print(listening_line(server.bound_ports()), file=stdout, flush=True)
    reactor.run()
    return 0


def migrate(args: argparse.Namespace, store: Any) -> int:
    print(f"database at the latest schema ({store.dialect})")
    return 0
