"""Push notifications: one module per channel behind one `Notifier` interface.

`tracker.push.base` holds the contract (`PushTarget`, `PushMessage`, `SendResult`,
`Notifier`); each channel module (fcm, jpush, huawei, xiaomi, oppo, vivo, apns,
webhook, email) exports ``NOTIFIER``: a factory taking the channel's settings
(a mapping from the ``[push.<channel>]`` table of the configuration file).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from tracker.push.base import CHANNELS, ChannelConfigError, Notifier

DISPATCHER_KEYS = {"public_url": str, "poll": float, "coalesce_window": float,
                   "max_attempts": int}


def build_notifiers(push: Mapping[str, Any]) -> dict[str, Notifier]:
    """The notifiers of the channels configured in ``[push.<channel>]`` tables;
    ChannelConfigError names what is wrong."""
    notifiers: dict[str, Notifier] = {}
    for key, value in push.items():
        if key in DISPATCHER_KEYS:
            continue
        if key not in CHANNELS or not isinstance(value, Mapping):
            raise ChannelConfigError(f"[push] unknown key or channel {key!r}; channels: "
                                     f"{', '.join(CHANNELS)}; keys: {', '.join(DISPATCHER_KEYS)}")
        module = importlib.import_module(f"tracker.push.{key}")
        notifiers[key] = module.NOTIFIER(value)
    return notifiers


def dispatcher_options(push: Mapping[str, Any]) -> dict[str, Any]:
    """Dispatcher keyword arguments from the ``[push]`` table's own keys."""
    names = {"public_url": "public_url", "poll": "poll_s", "coalesce_window": "coalesce_s",
             "max_attempts": "max_attempts"}
    options = {}
    for key, kind in DISPATCHER_KEYS.items():
        if key in push:
            try:
                options[names[key]] = kind(push[key])
            except (TypeError, ValueError):
                raise ChannelConfigError(f"[push] {key} must be a {kind.__name__}") from None
    return options
