"""`tracker device`, `tracker user` and `tracker command` (downlink commands)."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from protocols.base import COMMAND_TYPES
from tracker.cli.common import (
    compact,
    device_by_unique_id,
    fail,
    with_store,
    without_unset,
)


def register(commands: Any, configured: argparse.ArgumentParser) -> None:
    device = commands.add_parser("device", help="manage devices").add_subparsers(
        dest="device_command", required=True, metavar="ACTION")
    add = device.add_parser("add", parents=[configured], help="register a device")
    add.add_argument("--unique-id", required=True, help="IMEI or other unique id the device sends")
    add.add_argument("--name", required=True)
    add.set_defaults(handler=with_store(device_add))
    device.add_parser("list", parents=[configured], help="list registered devices"
                      ).set_defaults(handler=with_store(device_list))
    device_set = device.add_parser("set", parents=[configured],
                                   help="change a device's name, group or settings")
    device_set.add_argument("--unique-id", required=True, help="the device's IMEI or other unique id")
    device_set.add_argument("--name")
    grouping = device_set.add_mutually_exclusive_group()
    grouping.add_argument("--group", type=int, metavar="ID", help="put the device in this group")
    grouping.add_argument("--no-group", action="store_true", help="take it out of its group")
    device_set.add_argument("--speed-limit", type=float, metavar="KMH",
                            help="overspeed limit in km/h (stored as speedLimit in knots)")
    device_set.add_argument("--attribute", action="append", default=[], metavar="KEY=VALUE",
                            help="a setting, e.g. hysteresisMeters=30; KEY= removes it")
    device_set.set_defaults(handler=with_store(device_set_settings))
    unknown = device.add_parser("unknown", parents=[configured],
                                help="recent connection attempts of unknown devices")
    unknown.add_argument("--limit", type=int, default=100)
    unknown.set_defaults(handler=with_store(device_unknown))

    user = commands.add_parser("user", help="manage users").add_subparsers(
        dest="user_command", required=True, metavar="ACTION")
    user_add = user.add_parser("add", parents=[configured], help="create a user")
    user_add.add_argument("--email", required=True)
    user_add.add_argument("--password", required=True)
    user_add.add_argument("--name", default="")
    user_add.add_argument("--admin", action="store_true", help="administrator: sees every device")
    user_add.set_defaults(handler=with_store(add_user))

    command = commands.add_parser("command", help="downlink commands").add_subparsers(
        dest="command_command", required=True, metavar="ACTION")
    send = command.add_parser("send", parents=[configured],
                              help="queue a command; the server sends it when the device is connected")
    send.add_argument("--unique-id", required=True, help="the device's IMEI or other unique id")
    send.add_argument("--type", required=True, choices=sorted(COMMAND_TYPES))
    send.add_argument("--attribute", action="append", default=[], metavar="KEY=VALUE",
                      help="e.g. frequency=60 (positionPeriodic, s) or data=TEXT (custom)")
    send.set_defaults(handler=with_store(command_send))
    listing = command.add_parser("list", parents=[configured], help="recent commands and results")
    listing.add_argument("--unique-id", help="only this device")
    listing.set_defaults(handler=with_store(command_list))


def device_add(args: argparse.Namespace, store: Any) -> int:
    device = store.add_device(args.unique_id, args.name)
    print(f"added device {device.id}: {device.unique_id} {device.name}")
    return 0


def device_list(args: argparse.Namespace, store: Any) -> int:
    for device in store.devices():
        last = device.last_update.isoformat() if device.last_update else "never"
        print(f"{device.id}\t{device.unique_id}\t{device.name}\tlast update {last}")
    return 0


def device_set_settings(args: argparse.Namespace, store: Any) -> int:
    from tracker import editing
    from tracker.storage import UNCHANGED

    device = device_by_unique_id(store, args.unique_id)
    name = None if args.name is None else editing.name_field(args.name, "--name")
    group_id = None if args.no_group else (UNCHANGED if args.group is None else args.group)
    attributes = None
    if args.attribute or args.speed_limit is not None:
        changes = editing.attribute_pairs(args.attribute)
        if args.speed_limit is not None:
            changes["speedLimit"] = editing.knots_from_kmh(args.speed_limit, "--speed-limit")
        attributes = editing.device_settings(without_unset({**device.attributes, **changes}))
    device = store.update_device(None, device.id, name=name, group_id=group_id,
                                 attributes=attributes)
    group = "no group" if device.group_id is None else f"group {device.group_id}"
    print(f"updated device {device.id}: {device.unique_id} {device.name}, {group}, "
          f"settings {compact(dict(device.attributes))}")
    return 0


def device_unknown(args: argparse.Namespace, store: Any) -> int:
    for attempt in store.unknown_devices(args.limit):
        print(f"{attempt.attempt_time.isoformat()}\t{attempt.protocol}\t"
              f"{attempt.unique_id}\t{attempt.remote_address}")
    return 0


def add_user(args: argparse.Namespace, store: Any) -> int:
    user = store.add_user(args.email, args.password, administrator=args.admin, name=args.name)
    role = "administrator" if user.administrator else "user"
    print(f"added {role} {user.id}: {user.email}")
    return 0


def command_send(args: argparse.Namespace, store: Any) -> int:
    device = store.device_by_unique_id(args.unique_id)
    if device is None:
        return fail(f"no device with unique id {args.unique_id}", status=1)
    try:
        attributes = command_attributes(args.attribute)
    except ValueError as error:
        return fail(str(error))
    queued = store.queue_command(device.id, args.type, attributes, dt.datetime.now(dt.UTC))
    print(f"queued command {queued.id} ({queued.type}) for {device.unique_id}; a running "
          "server sends it when the device is connected (`tracker command list` shows it)")
    return 0


def command_list(args: argparse.Namespace, store: Any) -> int:
    device_id = None
    if args.unique_id:
        device = store.device_by_unique_id(args.unique_id)
        if device is None:
            return fail(f"no device with unique id {args.unique_id}", status=1)
        device_id = device.id
    for c in store.commands(None, device_id):
        print(f"{c.id}\tdevice {c.device_id}\t{c.type}\t{c.status}\t"
              f"{c.created.isoformat()}\t{c.result or ''}")
    return 0


def command_attributes(pairs: list[str]) -> dict:
    """KEY=VALUE pairs; integer values become integers."""
    attributes: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"attribute {pair!r} is not KEY=VALUE")
        attributes[key] = int(value) if value.isdigit() else value
    return attributes
