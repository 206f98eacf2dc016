"""The `tracker` command: serve, migrate, device, user, command, group, geofence,
calendar, rule, organisation, notification, quarantine, simulate, replay.

The configuration commands (group, device set, geofence, calendar, rule,
organisation) validate with `tracker.editing`, as the REST API does, and act on
the database unscoped (as an administrator); new objects go to the default
organisation.  A running server notices their changes by polling the
configuration revision.  Lists print one tab-separated line per object (as
``device list``); ``show`` prints the object as JSON (the API's shape, so a shown
rule can be edited and added again).  Invalid input, an unknown id and an object
still in use are reported on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from protocols.base import COMMAND_TYPES
from tracker import config as config_module
from tracker.push.base import CHANNELS

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

    _configuration_parsers(commands, configured)
    _quarantine_parser(commands, configured)

    from tracker import simulator
    simulator.add_arguments(commands.add_parser(
        "simulate", help="simulate devices against a running server"))

    replay = commands.add_parser("replay", help="decode a capture file and print JSON lines")
    replay.add_argument("--protocol", required=True)
    replay.add_argument("file", help="one frame per line in hex, or raw bytes as captured")
    return parser


def _quarantine_parser(commands, configured: argparse.ArgumentParser) -> None:
    quarantine = _actions(commands, "quarantine", "device data the database refused for good, kept raw")
    quarantine_list = quarantine.add_parser("list", parents=[configured],
                                            help="newest first: id, time, protocol, device, error")
    quarantine_list.add_argument("--limit", type=int, default=100)
    quarantine_list.add_argument("--json", action="store_true", help="print JSON")
    _with_id(quarantine, configured, "show", "one entry as JSON, with the frame's hex",
             "quarantine entry")
    purge = quarantine.add_parser("purge", parents=[configured], help="delete entries")
    which = purge.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every entry")
    which.add_argument("--older-than", type=float, metavar="DAYS",
                       help="entries received more than DAYS days ago")
    which.add_argument("--id", type=int, action="append", metavar="ID", help="this entry")



def _actions(commands, name: str, help_text: str):
    return commands.add_parser(name, help=help_text).add_subparsers(
        dest=f"{name}_command", required=True, metavar="ACTION")


def _with_id(parent, configured, action: str, help_text: str, what: str):
    sub = parent.add_parser(action, parents=[configured], help=help_text)
    sub.add_argument("id", type=int, metavar="ID", help=f"the {what}'s id")
    return sub


def _geofence_parser(commands, configured: argparse.ArgumentParser) -> None:
    geofence = _actions(commands, "geofence", "zones (geofences) and their links to devices and groups")
    geofence_add = geofence.add_parser("add", parents=[configured], help="create a zone")
    geofence_add.add_argument("--name", required=True)
    zone = geofence_add.add_mutually_exclusive_group(required=True)
    zone.add_argument("--area", metavar="TEXT",
                      help='Traccar area, lat lon: "CIRCLE (52.5 13.4, 200)", "POLYGON ((lat lon, ...))"')
    zone.add_argument("--wkt", metavar="TEXT", help="OGC WKT, lon lat: POLYGON ((13.4 52.5, ...))")
    zone.add_argument("--geojson", metavar="FILE", help="a GeoJSON geometry or Feature")
    geofence_add.add_argument("--description", default="")
    geofence_add.add_argument("--calendar", type=int, metavar="ID",
                              help="active only while this calendar is")
    geofence_add.add_argument("--speed-limit", type=float, metavar="KMH",
                              help="speed limit inside the zone in km/h (stored in knots)")
    geofence_add.add_argument("--dwell-minutes", type=float, metavar="M",
                              help="a geofenceDwell event after M minutes inside")
    geofence_add.add_argument("--attribute", action="append", default=[], metavar="KEY=VALUE",
                              help="e.g. hysteresisMeters=30, polylineDistance=25 (LINESTRING)")
    geofence.add_parser("list", parents=[configured], help="list zones")
    _with_id(geofence, configured, "show", "print a zone as JSON", "zone")
    _with_id(geofence, configured, "delete", "delete a zone and its links", "zone")
    for action, help_text in (("link", "assign a zone to a device or a group"),
                              ("unlink", "remove that assignment")):
        sub = _with_id(geofence, configured, action, help_text, "zone")
        target = sub.add_mutually_exclusive_group(required=True)
        target.add_argument("--unique-id", help="the device's IMEI or other unique id")
        target.add_argument("--group", type=int, metavar="ID", help="the group's id")


def _configuration_parsers(commands, configured: argparse.ArgumentParser) -> None:
    """group, geofence, calendar, rule and organisation."""
    def actions(name: str, help_text: str):
        return _actions(commands, name, help_text)

    def with_id(parent, action: str, help_text: str, what: str):
        return _with_id(parent, configured, action, help_text, what)

    group = actions("group", "device groups (their attributes are settings for their devices)")
    group_add = group.add_parser("add", parents=[configured], help="create a group")
    group_add.add_argument("--name", required=True)
    group_add.add_argument("--attribute", action="append", default=[], metavar="KEY=VALUE",
                           help="a setting for the group's devices, e.g. speedLimit=43.2 (knots)")
    group.add_parser("list", parents=[configured], help="list groups")
    with_id(group, "delete", "delete a group (its devices lose it)", "group")
    _geofence_parser(commands, configured)

    calendar = actions("calendar", "weekly active hours for zones and rules")
    calendar_add = calendar.add_parser("add", parents=[configured], help="create a calendar")
    calendar_add.add_argument("--name", required=True)
    calendar_add.add_argument("--file", required=True, metavar="FILE.json",
                              help='{"intervals": [{"days": ["mon"], "from": "08:00", "to": "17:00"}]}')
    calendar.add_parser("list", parents=[configured], help="list calendars")
    with_id(calendar, "delete", "delete a calendar (refused while a rule names it)", "calendar")

    rule = actions("rule", "user rules: a condition on devices raises an event")
    rule_add = rule.add_parser("add", parents=[configured], help="create a rule")
    rule_add.add_argument("--name", required=True)
    definition = rule_add.add_mutually_exclusive_group(required=True)
    definition.add_argument("--file", metavar="FILE.json",
                            help="the definition {when, devices, groups, zone, calendar, then}")
    definition.add_argument("--json", metavar="TEXT", help="the definition as JSON text")
    rule_add.add_argument("--disabled", action="store_true", help="store it switched off")
    rule.add_parser("list", parents=[configured], help="list rules")
    with_id(rule, "show", "print a rule as JSON", "rule")
    with_id(rule, "delete", "delete a rule", "rule")
    with_id(rule, "enable", "switch a rule on", "rule")
    with_id(rule, "disable", "switch a rule off", "rule")

    organisation = actions("organisation", "organisations")
    organisation.add_parser("list", parents=[configured], help="list organisations")
    timezone = organisation.add_parser("timezone", parents=[configured],
                                       help="set the time zone calendars are read in")
    timezone.add_argument("--id", type=int, default=1, help="the organisation (default 1)")
    timezone.add_argument("name", metavar="NAME", help="IANA time zone, e.g. Europe/Berlin")

    notification = actions("notification", "push tokens and notification preferences of a user")
    token_add = notification.add_parser("token-add", parents=[configured],
                                        help="register a push token (or webhook URL, e-mail address)")
    token_add.add_argument("--email", required=True, help="the user's e-mail")
    token_add.add_argument("--channel", required=True, choices=CHANNELS)
    token_add.add_argument("--platform", default="android")
    token_add.add_argument("--token", required=True)
    token_list = notification.add_parser("tokens", parents=[configured], help="a user's tokens (masked)")
    token_list.add_argument("--email", required=True)
    prefs = notification.add_parser("preferences", parents=[configured],
                                    help="set a user's preferences (JSON, see tracker/push/preferences.py)")
    prefs.add_argument("--email", required=True)
    prefs.add_argument("--json", required=True, metavar="TEXT")


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

    from tracker.app import TrackerServer

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
    from tracker.editing import EditError
    from tracker.storage import DuplicateError, InUseError, NotFoundError, open_store

    store = open_store(config.database_url)
    store.migrate()
    if args.command == "migrate":
        print(f"database at the latest schema ({store.dialect})")
        return 0
    handlers = {"device": _device, "command": _command, "user": _user, "group": _group,
                "geofence": _geofence, "calendar": _calendar, "rule": _rule,
                "organisation": _organisation, "notification": _notification,
                "quarantine": _quarantine}
    try:
        return handlers[args.command](args, store)
    except DuplicateError as error:
        print(f"tracker: {error}", file=sys.stderr)
        return 1
    except (EditError, NotFoundError, InUseError) as error:
        print(f"tracker: {error}", file=sys.stderr)
        return 2


def _device(args, store) -> int:
    if args.device_command == "add":
        device = store.add_device(args.unique_id, args.name)
        print(f"added device {device.id}: {device.unique_id} {device.name}")
    elif args.device_command == "list":
        for device in store.devices():
            last = device.last_update.isoformat() if device.last_update else "never"
            print(f"{device.id}\t{device.unique_id}\t{device.name}\tlast update {last}")
    elif args.device_command == "set":
        return _device_set(args, store)
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


def _quarantine(args, store) -> int:
    import datetime as dt

    from tracker.storage import NotFoundError

    if args.quarantine_command == "list":
        entries = store.quarantined(args.limit)
        if args.json:
            _print_json([_quarantine_json(e, with_frame=False) for e in entries])
        for e in [] if args.json else entries:
            print(f"{e.id}\t{e.entry.received.isoformat()}\t{e.entry.protocol}\t"
                  f"{e.entry.unique_id or e.entry.device_id or '-'}\t{e.entry.error}")
    elif args.quarantine_command == "show":
        entry = store.quarantine_entry(args.id)
        if entry is None:
            raise NotFoundError(f"no quarantine entry {args.id}")
        _print_json(_quarantine_json(entry, with_frame=True))
    else:
        before = (dt.datetime.now(dt.UTC) - dt.timedelta(days=args.older_than)
                  if args.older_than is not None else None)
        deleted = store.purge_quarantine(received_before=before, ids=args.id)
        print(f"deleted {deleted} quarantine entries")
    return 0


def _quarantine_json(stored, *, with_frame: bool) -> dict:
    entry = stored.entry
    shown = {"id": stored.id, "received": entry.received.isoformat(),
             "protocol": entry.protocol, "deviceId": entry.device_id,
             "uniqueId": entry.unique_id, "remoteAddress": entry.remote_address,
             "error": entry.error}
    if with_frame:
        shown["frameHex"] = entry.frame_hex
    return shown


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


# -- configuration -----------------------------------------------------------------------

def _compact(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, default=str))


def _device_by_unique_id(store, unique_id: str):
    from tracker.storage import NotFoundError

    device = store.device_by_unique_id(unique_id)
    if device is None:
        raise NotFoundError(f"no device with unique id {unique_id}")
    return device


def _json_file(path: str, what: str):
    """A JSON file's content; a missing file or bad JSON is an EditError naming it."""
    from tracker.editing import EditError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise EditError(f"{what}: cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise EditError(f"{what}: {path} is not JSON: {error}") from None


def _without_unset(attributes: dict) -> dict:
    return {key: value for key, value in attributes.items() if value is not None}


def _device_set(args, store) -> int:
    from tracker import editing
    from tracker.storage import UNCHANGED

    device = _device_by_unique_id(store, args.unique_id)
    name = None if args.name is None else editing.name_field(args.name, "--name")
    group_id = None if args.no_group else (UNCHANGED if args.group is None else args.group)
    attributes = None
    if args.attribute or args.speed_limit is not None:
        changes = editing.attribute_pairs(args.attribute)
        if args.speed_limit is not None:
            changes["speedLimit"] = editing.knots_from_kmh(args.speed_limit, "--speed-limit")
        attributes = editing.device_settings(_without_unset({**device.attributes, **changes}))
    device = store.update_device(None, device.id, name=name, group_id=group_id,
                                 attributes=attributes)
    group = "no group" if device.group_id is None else f"group {device.group_id}"
    print(f"updated device {device.id}: {device.unique_id} {device.name}, {group}, "
          f"settings {_compact(dict(device.attributes))}")
    return 0


def _group(args, store) -> int:
    from tracker import editing

    if args.group_command == "add":
        attributes = _without_unset(editing.attribute_pairs(args.attribute))
        fields = editing.group_fields({"name": args.name, "attributes": attributes})
        group = store.add_group(None, fields.name, fields.attributes)
        print(f"added group {group.id}: {group.name}")
    elif args.group_command == "list":
        for group in store.groups(None):
            print(f"{group.id}\t{group.name}\t{_compact(dict(group.attributes))}")
    else:
        store.delete_group(None, args.id)
        print(f"deleted group {args.id}")
    return 0


def _geofence_json(geofence) -> dict:
    """As GET /api/geofences/{id} shows it, plus its WKT."""
    from geofence.formats import traccar_area, wkt_text

    return {"id": geofence.id, "name": geofence.name, "description": geofence.description,
            "area": traccar_area(geofence.geometry), "calendarId": geofence.calendar_id,
            "attributes": dict(geofence.attributes), "wkt": wkt_text(geofence.geometry),
            "geojson": geofence.geometry}


def _geofence(args, store) -> int:
    from geofence.formats import traccar_area
    from tracker import editing
    from tracker.storage import NotFoundError

    action = args.geofence_command
    if action == "add":
        attributes = _without_unset(editing.attribute_pairs(args.attribute))
        if args.speed_limit is not None:
            attributes["speedLimit"] = editing.knots_from_kmh(args.speed_limit, "--speed-limit")
        if args.dwell_minutes is not None:
            attributes["dwellMinutes"] = args.dwell_minutes
        body = {"name": args.name, "description": args.description, "calendarId": args.calendar,
                "attributes": attributes, "area": args.area, "wkt": args.wkt}
        if args.geojson is not None:
            body["geojson"] = _json_file(args.geojson, "--geojson")
        fields = editing.geofence_fields(body)
        geofence = store.add_geofence(None, fields.name, fields.feature,
                                      description=fields.description,
                                      calendar_id=fields.calendar_id, attributes=fields.attributes)
        print(f"added geofence {geofence.id}: {geofence.name} {traccar_area(geofence.geometry)}")
    elif action == "list":
        for geofence in store.geofences(None):
            print(f"{geofence.id}\t{geofence.name}\t{traccar_area(geofence.geometry)}")
    elif action == "show":
        geofence = store.geofence(None, args.id)
        if geofence is None:
            raise NotFoundError(f"geofence {args.id} not found")
        _print_json(_geofence_json(geofence))
    elif action == "delete":
        store.delete_geofence(None, args.id)
        print(f"deleted geofence {args.id}")
    else:
        device_id = None if args.unique_id is None else _device_by_unique_id(store, args.unique_id).id
        method = store.link_geofence if action == "link" else store.unlink_geofence
        method(None, args.id, device_id=device_id, group_id=args.group)
        target = f"device {args.unique_id}" if device_id is not None else f"group {args.group}"
        print(f"{action}ed geofence {args.id} {'to' if action == 'link' else 'from'} {target}")
    return 0


def _calendar(args, store) -> int:
    from tracker import editing

    if args.calendar_command == "add":
        data = _json_file(args.file, "--file")
        if isinstance(data, dict) and "intervals" not in data and "data" in data:
            data = data["data"]   # a calendar as the API shows it
        fields = editing.calendar_fields({"name": args.name, "data": data})
        calendar = store.add_calendar(None, fields.name, fields.data)
        print(f"added calendar {calendar.id}: {calendar.name}")
    elif args.calendar_command == "list":
        for calendar in store.calendars(None):
            print(f"{calendar.id}\t{calendar.name}\t{_compact(calendar.data)}")
    else:
        store.delete_calendar(None, args.id)
        print(f"deleted calendar {args.id}")
    return 0


def _rule_json(rule) -> dict:
    """As GET /api/rules/{id} shows it (and `rule add --file` takes it)."""
    return {"id": rule.id, "name": rule.name, "enabled": rule.enabled, **rule.definition}


def _rule(args, store) -> int:
    from tracker import editing
    from tracker.editing import EditError
    from tracker.storage import NotFoundError

    action = args.rule_command
    if action == "add":
        if args.file is not None:
            body = _json_file(args.file, "--file")
        else:
            try:
                body = json.loads(args.json)
            except ValueError as error:
                raise EditError(f"--json: not JSON: {error}") from None
        if not isinstance(body, dict):
            raise EditError("rule: the definition must be a JSON object")
        body = {**body, "name": args.name}
        if args.disabled:
            body["enabled"] = False
        fields = editing.rule_fields(store, None, body)
        rule = store.add_rule(None, fields.name, fields.definition, fields.enabled)
        print(f"added rule {rule.id}: {rule.name}{'' if rule.enabled else ' (disabled)'}")
        return 0
    if action == "list":
        for rule in store.rules(None):
            state = "enabled" if rule.enabled else "disabled"
            print(f"{rule.id}\t{rule.name}\t{state}\t{_compact(rule.definition)}")
        return 0
    if action == "delete":
        store.delete_rule(None, args.id)
        print(f"deleted rule {args.id}")
        return 0
    rule = store.rule(None, args.id)
    if rule is None:
        raise NotFoundError(f"rule {args.id} not found")
    if action == "show":
        _print_json(_rule_json(rule))
        return 0
    enabled = action == "enable"
    store.update_rule(None, rule.id, name=rule.name, definition=rule.definition, enabled=enabled)
    print(f"rule {rule.id} {action}d: {rule.name}")
    return 0


def _organisation(args, store) -> int:
    from tracker import editing

    if args.organisation_command == "list":
        for organisation in store.organisations():
            print(f"{organisation.id}\t{organisation.name}\t{organisation.timezone}")
        return 0
    name = editing.timezone_name(args.name, "NAME")
    store.set_organisation_timezone(args.id, name)
    print(f"organisation {args.id}: time zone {name}")
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


def _notification(args, store) -> int:
    import datetime as dt

    from tracker.push.base import mask
    from tracker.push.preferences import Preferences, PreferencesError

    user = store.user_by_email(args.email)
    if user is None:
        print(f"tracker: no user {args.email}", file=sys.stderr)
        return 2
    if args.notification_command == "token-add":
        from tracker.push.confirm import PushTargetTaken

        try:
            token = store.add_push_token(user.id, args.channel, args.platform, args.token,
                                         dt.datetime.now(dt.UTC))
        except PushTargetTaken:
            print("tracker: another user holds this push target", file=sys.stderr)
            return 2
        print(f"added token {token.id}: {token.channel} {mask(token.token)}")
    elif args.notification_command == "tokens":
        for token in store.push_tokens(user.id):
            state = f"disabled ({token.disabled_reason})" if token.disabled else "active"
            print(f"{token.id}\t{token.channel}\t{token.platform}\t{mask(token.token)}\t{state}")
    else:
        try:
            data = json.loads(args.json)
            Preferences.from_json(data)
        except (ValueError, PreferencesError) as error:
            print(f"tracker: preferences: {error}", file=sys.stderr)
            return 2
        store.set_preferences(user.id, data)
        print(f"preferences of {user.email} stored")
    return 0
