"""`tracker notification`: a user's push tokens and notification preferences."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from tracker.cli.common import actions, fail, with_store
from tracker.push.base import CHANNELS


def register(commands: Any, configured: argparse.ArgumentParser) -> None:
    notification = actions(commands, "notification",
                           "push tokens and notification preferences of a user")
    token_add = notification.add_parser("token-add", parents=[configured],
                                        help="register a push token (or webhook URL, e-mail address)")
    token_add.add_argument("--email", required=True, help="the user's e-mail")
    token_add.add_argument("--channel", required=True, choices=CHANNELS)
    token_add.add_argument("--platform", default="android")
    token_add.add_argument("--token", required=True)
    token_add.set_defaults(handler=with_store(token_add_action))
    token_list = notification.add_parser("tokens", parents=[configured], help="a user's tokens (masked)")
    token_list.add_argument("--email", required=True)
    token_list.set_defaults(handler=with_store(tokens))
    prefs = notification.add_parser("preferences", parents=[configured],
                                    help="set a user's preferences (JSON, see tracker/push/preferences.py)")
    prefs.add_argument("--email", required=True)
    prefs.add_argument("--json", required=True, metavar="TEXT")
    prefs.set_defaults(handler=with_store(preferences))


def _user(args: argparse.Namespace, store: Any) -> Any:
    return store.user_by_email(args.email)


def token_add_action(args: argparse.Namespace, store: Any) -> int:
    from tracker.push.base import mask
    from tracker.push.confirm import PushTargetTaken

    user = _user(args, store)
    if user is None:
        return fail(f"no user {args.email}")
    try:
        token = store.add_push_token(user.id, args.channel, args.platform, args.token,
                                     dt.datetime.now(dt.UTC))
    except PushTargetTaken:
        return fail("another user holds this push target")
    print(f"added token {token.id}: {token.channel} {mask(token.token)}")
    return 0


def tokens(args: argparse.Namespace, store: Any) -> int:
    from tracker.push.base import mask

    user = _user(args, store)
    if user is None:
        return fail(f"no user {args.email}")
    for token in store.push_tokens(user.id):
        state = f"disabled ({token.disabled_reason})" if token.disabled else "active"
        print(f"{token.id}\t{token.channel}\t{token.platform}\t{mask(token.token)}\t{state}")
    return 0


def preferences(args: argparse.Namespace, store: Any) -> int:
    from tracker.push.preferences import Preferences, PreferencesError

    user = _user(args, store)
    if user is None:
        return fail(f"no user {args.email}")
    try:
        data = json.loads(args.json)
        Preferences.from_json(data)
    except (ValueError, PreferencesError) as error:
        return fail(f"preferences: {error}")
    store.set_preferences(user.id, data)
    print(f"preferences of {user.email} stored")
    return 0
