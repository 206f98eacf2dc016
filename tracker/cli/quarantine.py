"""`tracker quarantine`: device data the database refused for good, kept raw."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from tracker.cli.common import actions, print_json, with_id, with_store


def register(commands: Any, configured: argparse.ArgumentParser) -> None:
    quarantine = actions(commands, "quarantine", "device data the database refused for good, kept raw")
    quarantine_list = quarantine.add_parser("list", parents=[configured],
                                            help="newest first: id, time, protocol, device, error")
    quarantine_list.add_argument("--limit", type=int, default=100)
    quarantine_list.add_argument("--json", action="store_true", help="print JSON")
    quarantine_list.set_defaults(handler=with_store(list_entries))
    with_id(quarantine, configured, "show", "one entry as JSON, with the frame's hex",
            "quarantine entry").set_defaults(handler=with_store(show))
    purge_parser = quarantine.add_parser("purge", parents=[configured], help="delete entries")
    which = purge_parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every entry")
    which.add_argument("--older-than", type=float, metavar="DAYS",
                       help="entries received more than DAYS days ago")
    which.add_argument("--id", type=int, action="append", metavar="ID", help="this entry")
    purge_parser.set_defaults(handler=with_store(purge))


def list_entries(args: argparse.Namespace, store: Any) -> int:
    entries = store.quarantined(args.limit)
    if args.json:
        print_json([entry_json(e, with_frame=False) for e in entries])
        return 0
    for e in entries:
        print(f"{e.id}\t{e.entry.received.isoformat()}\t{e.entry.protocol}\t"
              f"{e.entry.unique_id or e.entry.device_id or '-'}\t{e.entry.error}")
    return 0


def show(args: argparse.Namespace, store: Any) -> int:
    from tracker.storage import NotFoundError

    entry = store.quarantine_entry(args.id)
    if entry is None:
        raise NotFoundError(f"no quarantine entry {args.id}")
    print_json(entry_json(entry, with_frame=True))
    return 0


def purge(args: argparse.Namespace, store: Any) -> int:
    before = (dt.datetime.now(dt.UTC) - dt.timedelta(days=args.older_than)
              if args.older_than is not None else None)
    deleted = store.purge_quarantine(received_before=before, ids=args.id)
    print(f"deleted {deleted} quarantine entries")
    return 0


def entry_json(stored: Any, *, with_frame: bool) -> dict:
    entry = stored.entry
    shown = {"id": stored.id, "received": entry.received.isoformat(),
             "protocol": entry.protocol, "deviceId": entry.device_id,
             "uniqueId": entry.unique_id, "remoteAddress": entry.remote_address,
             "error": entry.error}
    if with_frame:
        shown["frameHex"] = entry.frame_hex
    return shown
