"""What the command groups share: the handler wrappers and output helpers.

A handler takes the parsed arguments and returns the exit status.  Commands
that work on the database are written as ``action(args, store)`` and wrapped
with `with_store`, which loads the configuration, opens and migrates the
database and turns the storage and validation errors into messages.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracker import config as config_module

Handler = Callable[[argparse.Namespace], int]
StoreAction = Callable[[argparse.Namespace, Any], int]
ConfigAction = Callable[[argparse.Namespace, config_module.Config], int]


def with_config(action: ConfigAction) -> Handler:
    """A handler running `action(args, config)` with the loaded configuration
    (a ConfigError reaches `main`, which reports it with status 2)."""
    @functools.wraps(action)
    def handler(args: argparse.Namespace) -> int:
        return action(args, config_module.load(args.config))
    return handler


def with_store(action: StoreAction) -> Handler:
    """A handler running `action(args, store)` on the configured database,
    migrated first.  A duplicate is status 1; invalid input, an unknown id or an
    object in use status 2; each reported on stderr without a traceback."""
    @functools.wraps(action)
    def handler(args: argparse.Namespace) -> int:
        from tracker.editing import EditError
        from tracker.storage import DuplicateError, InUseError, NotFoundError, open_store

        config = config_module.load(args.config)
        store = open_store(config.database_url)    # reachable and migrated
        try:
            return action(args, store)
        except DuplicateError as error:
            return fail(str(error), status=1)
        except (EditError, NotFoundError, InUseError) as error:
            return fail(str(error))
        finally:
            store.close()
    return handler


def fail(message: str, status: int = 2) -> int:
    """Report `message` on stderr as ``tracker: MESSAGE``; returns `status`."""
    print(f"tracker: {message}", file=sys.stderr)
    return status


def actions(commands: Any, name: str, help_text: str) -> Any:
    """A command group (``tracker NAME ACTION``): its subparsers."""
    return commands.add_parser(name, help=help_text).add_subparsers(
        dest=f"{name}_command", required=True, metavar="ACTION")


def with_id(parent: Any, configured: argparse.ArgumentParser, action: str, help_text: str,
            what: str) -> argparse.ArgumentParser:
    """An action taking one positional ID."""
    sub = parent.add_parser(action, parents=[configured], help=help_text)
    sub.add_argument("id", type=int, metavar="ID", help=f"the {what}'s id")
    return sub


def compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def device_by_unique_id(store: Any, unique_id: str) -> Any:
    from tracker.storage import NotFoundError

    device = store.device_by_unique_id(unique_id)
    if device is None:
        raise NotFoundError(f"no device with unique id {unique_id}")
    return device


def json_file(path: str, what: str) -> Any:
    """A JSON file's content; a missing file or bad JSON is an EditError naming it."""
    from tracker.editing import EditError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise EditError(f"{what}: cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise EditError(f"{what}: {path} is not JSON: {error}") from None


def without_unset(attributes: dict) -> dict:
    return {key: value for key, value in attributes.items() if value is not None}
