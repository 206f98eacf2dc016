"""The configuration commands: `tracker group`, `geofence`, `calendar`, `rule` and
`organisation`, validated by `tracker.editing` as the REST API is."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tracker.cli.common import (
    actions,
    compact,
    device_by_unique_id,
    json_file,
    print_json,
    with_id,
    with_store,
    without_unset,
)


def register(commands: Any, configured: argparse.ArgumentParser) -> None:
    def handled(parser: argparse.ArgumentParser, action: Any) -> None:
        parser.set_defaults(handler=with_store(action))

    group = actions(commands, "group", "device groups (their attributes are settings for their devices)")
    group_add = group.add_parser("add", parents=[configured], help="create a group")
    group_add.add_argument("--name", required=True)
    group_add.add_argument("--attribute", action="append", default=[], metavar="KEY=VALUE",
                           help="a setting for the group's devices, e.g. speedLimit=43.2 (knots)")
    handled(group_add, group_add_action)
    handled(group.add_parser("list", parents=[configured], help="list groups"), group_list)
    handled(with_id(group, configured, "delete", "delete a group (its devices lose it)", "group"),
            group_delete)

    _register_geofence(commands, configured, handled)

    calendar = actions(commands, "calendar", "weekly active hours for zones and rules")
    calendar_add = calendar.add_parser("add", parents=[configured], help="create a calendar")
    calendar_add.add_argument("--name", required=True)
    calendar_add.add_argument("--file", required=True, metavar="FILE.json",
                              help='{"intervals": [{"days": ["mon"], "from": "08:00", "to": "17:00"}]}')
    handled(calendar_add, calendar_add_action)
    handled(calendar.add_parser("list", parents=[configured], help="list calendars"), calendar_list)
    handled(with_id(calendar, configured, "delete",
                    "delete a calendar (refused while a rule names it)", "calendar"),
            calendar_delete)

    rule = actions(commands, "rule", "user rules: a condition on devices raises an event")
    rule_add = rule.add_parser("add", parents=[configured], help="create a rule")
    rule_add.add_argument("--name", required=True)
    definition = rule_add.add_mutually_exclusive_group(required=True)
    definition.add_argument("--file", metavar="FILE.json",
                            help="the definition {when, devices, groups, zone, calendar, then}")
    definition.add_argument("--json", metavar="TEXT", help="the definition as JSON text")
    rule_add.add_argument("--disabled", action="store_true", help="store it switched off")
    handled(rule_add, rule_add_action)
    handled(rule.add_parser("list", parents=[configured], help="list rules"), rule_list)
    handled(with_id(rule, configured, "show", "print a rule as JSON", "rule"), rule_show)
    handled(with_id(rule, configured, "delete", "delete a rule", "rule"), rule_delete)
    handled(with_id(rule, configured, "enable", "switch a rule on", "rule"), rule_enable)
    handled(with_id(rule, configured, "disable", "switch a rule off", "rule"), rule_disable)

    organisation = actions(commands, "organisation", "organisations")
    handled(organisation.add_parser("list", parents=[configured], help="list organisations"),
            organisation_list)
    timezone = organisation.add_parser("timezone", parents=[configured],
                                       help="set the time zone calendars are read in")
    timezone.add_argument("--id", type=int, default=1, help="the organisation (default 1)")
    timezone.add_argument("name", metavar="NAME", help="IANA time zone, e.g. Europe/Berlin")
    handled(timezone, organisation_timezone)


def _register_geofence(commands: Any, configured: argparse.ArgumentParser, handled: Any) -> None:
    geofence = actions(commands, "geofence", "zones (geofences) and their links to devices and groups")
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
    handled(geofence_add, geofence_add_action)
    handled(geofence.add_parser("list", parents=[configured], help="list zones"), geofence_list)
    handled(with_id(geofence, configured, "show", "print a zone as JSON", "zone"), geofence_show)
    handled(with_id(geofence, configured, "delete", "delete a zone and its links", "zone"),
            geofence_delete)
    for action, help_text, link in (("link", "assign a zone to a device or a group", True),
                                    ("unlink", "remove that assignment", False)):
        sub = with_id(geofence, configured, action, help_text, "zone")
        target = sub.add_mutually_exclusive_group(required=True)
        target.add_argument("--unique-id", help="the device's IMEI or other unique id")
        target.add_argument("--group", type=int, metavar="ID", help="the group's id")
        handled(sub, geofence_link if link else geofence_unlink)


# -- group -----------------------------------------------------------------------------

def group_add_action(args: argparse.Namespace, store: Any) -> int:
    from tracker import editing

    attributes = without_unset(editing.attribute_pairs(args.attribute))
    fields = editing.group_fields({"name": args.name, "attributes": attributes})
    group = store.add_group(None, fields.name, fields.attributes)
    print(f"added group {group.id}: {group.name}")
    return 0


def group_list(args: argparse.Namespace, store: Any) -> int:
    for group in store.groups(None):
        print(f"{group.id}\t{group.name}\t{compact(dict(group.attributes))}")
    return 0


def group_delete(args: argparse.Namespace, store: Any) -> int:
    store.delete_group(None, args.id)
    print(f"deleted group {args.id}")
    return 0


# -- geofence --------------------------------------------------------------------------

def geofence_json(geofence: Any) -> dict:
    """As GET /api/geofences/{id} shows it, plus its WKT."""
    from geofence.formats import traccar_area, wkt_text

    return {"id": geofence.id, "name": geofence.name, "description": geofence.description,
            "area": traccar_area(geofence.geometry), "calendarId": geofence.calendar_id,
            "attributes": dict(geofence.attributes), "wkt": wkt_text(geofence.geometry),
            "geojson": geofence.geometry}


def geofence_add_action(args: argparse.Namespace, store: Any) -> int:
    from geofence.formats import traccar_area
    from tracker import editing

    attributes = without_unset(editing.attribute_pairs(args.attribute))
    if args.speed_limit is not None:
        attributes["speedLimit"] = editing.knots_from_kmh(args.speed_limit, "--speed-limit")
    if args.dwell_minutes is not None:
        attributes["dwellMinutes"] = args.dwell_minutes
    body = {"name": args.name, "description": args.description, "calendarId": args.calendar,
            "attributes": attributes, "area": args.area, "wkt": args.wkt}
    if args.geojson is not None:
        body["geojson"] = json_file(args.geojson, "--geojson")
    fields = editing.geofence_fields(body)
    geofence = store.add_geofence(None, fields.name, fields.feature,
                                  description=fields.description,
                                  calendar_id=fields.calendar_id, attributes=fields.attributes)
    print(f"added geofence {geofence.id}: {geofence.name} {traccar_area(geofence.geometry)}")
    return 0


def geofence_list(args: argparse.Namespace, store: Any) -> int:
    from geofence.formats import traccar_area

    for geofence in store.geofences(None):
        print(f"{geofence.id}\t{geofence.name}\t{traccar_area(geofence.geometry)}")
    return 0


def geofence_show(args: argparse.Namespace, store: Any) -> int:
    from tracker.storage import NotFoundError

    geofence = store.geofence(None, args.id)
    if geofence is None:
        raise NotFoundError(f"geofence {args.id} not found")
    print_json(geofence_json(geofence))
    return 0


def geofence_delete(args: argparse.Namespace, store: Any) -> int:
    store.delete_geofence(None, args.id)
    print(f"deleted geofence {args.id}")
    return 0


def geofence_link(args: argparse.Namespace, store: Any) -> int:
    device_id = _link_device(args, store)
    store.link_geofence(None, args.id, device_id=device_id, group_id=args.group)
    print(f"linked geofence {args.id} to {_link_target(args, device_id)}")
    return 0


def geofence_unlink(args: argparse.Namespace, store: Any) -> int:
    device_id = _link_device(args, store)
    store.unlink_geofence(None, args.id, device_id=device_id, group_id=args.group)
    print(f"unlinked geofence {args.id} from {_link_target(args, device_id)}")
    return 0


def _link_device(args: argparse.Namespace, store: Any) -> int | None:
    return None if args.unique_id is None else device_by_unique_id(store, args.unique_id).id


def _link_target(args: argparse.Namespace, device_id: int | None) -> str:
    return f"device {args.unique_id}" if device_id is not None else f"group {args.group}"


# -- calendar --------------------------------------------------------------------------

def calendar_add_action(args: argparse.Namespace, store: Any) -> int:
    from tracker import editing

    data = json_file(args.file, "--file")
    if isinstance(data, dict) and "intervals" not in data and "data" in data:
        data = data["data"]   # a calendar as the API shows it
    fields = editing.calendar_fields({"name": args.name, "data": data})
    calendar = store.add_calendar(None, fields.name, fields.data)
    print(f"added calendar {calendar.id}: {calendar.name}")
    return 0


def calendar_list(args: argparse.Namespace, store: Any) -> int:
    for calendar in store.calendars(None):
        print(f"{calendar.id}\t{calendar.name}\t{compact(calendar.data)}")
    return 0


def calendar_delete(args: argparse.Namespace, store: Any) -> int:
    store.delete_calendar(None, args.id)
    print(f"deleted calendar {args.id}")
    return 0


# -- rule ------------------------------------------------------------------------------

def rule_json(rule: Any) -> dict:
    """As GET /api/rules/{id} shows it (and `rule add --file` takes it)."""
    return {"id": rule.id, "name": rule.name, "enabled": rule.enabled, **rule.definition}


def rule_add_action(args: argparse.Namespace, store: Any) -> int:
    from tracker import editing
    from tracker.editing import EditError

    if args.file is not None:
        body = json_file(args.file, "--file")
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


def rule_list(args: argparse.Namespace, store: Any) -> int:
    for rule in store.rules(None):
        state = "enabled" if rule.enabled else "disabled"
        print(f"{rule.id}\t{rule.name}\t{state}\t{compact(rule.definition)}")
    return 0


def rule_delete(args: argparse.Namespace, store: Any) -> int:
    store.delete_rule(None, args.id)
    print(f"deleted rule {args.id}")
    return 0


def rule_show(args: argparse.Namespace, store: Any) -> int:
    print_json(rule_json(_rule(args, store)))
    return 0


def rule_enable(args: argparse.Namespace, store: Any) -> int:
    return _switch_rule(args, store, enabled=True)


def rule_disable(args: argparse.Namespace, store: Any) -> int:
    return _switch_rule(args, store, enabled=False)


def _rule(args: argparse.Namespace, store: Any) -> Any:
    from tracker.storage import NotFoundError

    rule = store.rule(None, args.id)
    if rule is None:
        raise NotFoundError(f"rule {args.id} not found")
    return rule


def _switch_rule(args: argparse.Namespace, store: Any, *, enabled: bool) -> int:
    rule = _rule(args, store)
    store.update_rule(None, rule.id, name=rule.name, definition=rule.definition, enabled=enabled)
    print(f"rule {rule.id} {'enabled' if enabled else 'disabled'}: {rule.name}")
    return 0


# -- organisation ----------------------------------------------------------------------

def organisation_list(args: argparse.Namespace, store: Any) -> int:
    for organisation in store.organisations():
        print(f"{organisation.id}\t{organisation.name}\t{organisation.timezone}")
    return 0


def organisation_timezone(args: argparse.Namespace, store: Any) -> int:
    from tracker import editing

    name = editing.timezone_name(args.name, "NAME")
    store.set_organisation_timezone(args.id, name)
    print(f"organisation {args.id}: time zone {name}")
    return 0
