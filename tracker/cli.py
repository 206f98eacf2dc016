"""The `tracker` command: serve, migrate, device, user, simulate, replay."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from protocols.base import COMMAND_TYPES
from tracker import config as config_module

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

    commands.add_parser("serve", parents=[configured],
                        help="run the server (applies migrations first)")
    commands.add_parser("migrate", parents=[configured], help="apply database migrations and exit")

    device = commands.add_parser("device", help="manage devices").add_subparsers(
        dest="device_command", required=True, metavar="ACTION")
    add = device.add_parser("add", parents=[configured], help="register a device")
    add.add_argument("--unique-id", required=True, help="IMEI or other unique id the device sends")
    add.add_argument("--name", required=True)
    device.add_parser("list", parents=[configured], help="list registered devices")
    unknown = device.add_parser("unknown", parents=[configured],
                                help="recent connection attempts of unknown devices")
    unknown.add_argument("--limit", type=int, default=100)

    user = commands.add_parser("user", help="manage users").add_subparsers(
        dest="user_command", required=True, metavar="ACTION")
    user_add = user.add_parser("add", parents=[configured], help="create a user")
    user_add.add_argument("--email", required=True)
    user_add.add_argument("--password", required=True)
    user_add.add_argument("--name", default="")
    user_add.add_argument("--admin", action="store_true", help="administrator: sees every device")

    command = commands.add_parser("command", help="downlink commands").add_subparsers(
        dest="command_command", required=True, metavar="ACTION")
    send = command.add_parser("send", parents=[configured],
                              help="queue a command; the server sends it when the device is connected")
    send.add_argument("--unique-id", required=True, help="the device's IMEI or other unique id")
    send.add_argument("--type", required=True, choices=sorted(COMMAND_TYPES))
    send.add_argument("--attribute", action="append", default=[], metavar="KEY=VALUE",
                      help="e.g. frequency=60 (positionPeriodic, s) or data=TEXT (custom)")
    listing = command.add_parser("list", parents=[configured], help="recent commands and results")
    listing.add_argument("--unique-id", help="only this device")

    from tracker import simulator
    simulator.add_arguments(commands.add_parser(
        "simulate", help="simulate devices against a running server"))

    replay = commands.add_parser("replay", help="decode a capture file and print JSON lines")
    replay.add_argument("--protocol", required=True)
    replay.add_argument("file", help="one frame per line in hex, or raw bytes as captured")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "simulate":
            from tracker import simulator
            return simulator.run(args)
        if args.command == "replay":
            return _replay(args)
        config = config_module.load(args.config)
    except config_module.ConfigError as error:
        print(f"tracker: {error}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(config)
    return _admin(args, config)


def _serve(config) -> int:
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from tracker.server import TrackerServer

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)])
    server = TrackerServer(config, reactor)
    try:
        server.start()
    except Exception as error:  # bind failure, unreachable database at start
        print(f"tracker: cannot start: {error}", file=sys.stderr)
        return 1
    reactor.run()
    return 0


def _admin(args, config) -> int:
    from tracker.storage import DuplicateError, open_store

    store = open_store(config.database_url)
    store.migrate()
    if args.command == "migrate":
        print(f"database at the latest schema ({store.dialect})")
        return 0
    try:
        if args.command == "device":
            return _device(args, store)
        if args.command == "command":
            return _command(args, store)
        return _user(args, store)
    except DuplicateError as error:
        print(f"tracker: {error}", file=sys.stderr)
        return 1


def _device(args, store) -> int:
    if args.device_command == "add":
        device = store.add_device(args.unique_id, args.name)
        print(f"added device {device.id}: {device.unique_id} {device.name}")
    elif args.device_command == "list":
        for device in store.devices():
            last = device.last_update.isoformat() if device.last_update else "never"
            print(f"{device.id}\t{device.unique_id}\t{device.name}\tlast update {last}")
    else:
        for attempt in store.unknown_devices(args.limit):
            print(f"{attempt.attempt_time.isoformat()}\t{attempt.protocol}\t"
                  f"{attempt.unique_id}\t{attempt.remote_address}")
    return 0


def _command(args, store) -> int:
    import datetime as dt

    device = store.device_by_unique_id(args.unique_id) if args.unique_id else None
    if args.unique_id and device is None:
        print(f"tracker: no device with unique id {args.unique_id}", file=sys.stderr)
        return 1
    if args.command_command == "list":
        for c in store.commands(None, device.id if device else None):
            print(f"{c.id}\tdevice {c.device_id}\t{c.type}\t{c.status}\t"
                  f"{c.created.isoformat()}\t{c.result or ''}")
        return 0
    try:
        attributes = _attributes(args.attribute)
    except ValueError as error:
        print(f"tracker: {error}", file=sys.stderr)
        return 2
    queued = store.queue_command(device.id, args.type, attributes, dt.datetime.now(dt.UTC))
    print(f"queued command {queued.id} ({queued.type}) for {device.unique_id}; a running "
          "server sends it when the device is connected (`tracker command list` shows it)")
    return 0


def _attributes(pairs: list[str]) -> dict:
    """KEY=VALUE pairs; integer values become integers."""
    attributes: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"attribute {pair!r} is not KEY=VALUE")
        attributes[key] = int(value) if value.isdigit() else value
    return attributes


def _user(args, store) -> int:
    user = store.add_user(args.email, args.password, administrator=args.admin, name=args.name)
    role = "administrator" if user.administrator else "user"
    print(f"added {role} {user.id}: {user.email}")
    return 0


def _replay(args) -> int:
    """Decode a capture; bad frames are reported on stderr and skipped."""
    import protocols

    data = Path(args.file).read_bytes()
    frames, stream = _capture_frames(data)
    bad = []

    def report(index: int, error: protocols.ProtocolError) -> None:
        bad.append(index)
        print(f"tracker: frame {index + 1}: {error}", file=sys.stderr)

    try:
        results = protocols.replay(args.protocol, frames, stream=stream, errors=report)
    except ValueError as error:
        print(f"tracker: {error}", file=sys.stderr)
        return 2
    try:
        for records in results:
            for record in records:
                print(json.dumps(record, default=str))
        sys.stdout.flush()
    except BrokenPipeError:   # piped into `head`: stop quietly (Python's documented recipe)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1 if bad else 0


def _capture_frames(data: bytes) -> tuple[list[bytes], bool]:
    """Hex lines -> (frames, False); anything else -> ([raw bytes], True)."""
    try:
        lines = [line.strip() for line in data.decode("ascii").splitlines() if line.strip()]
        return [bytes.fromhex(line) for line in lines], False
    except ValueError:  # not ASCII hex: a raw capture of the byte stream
        return [data], True
