"""Server configuration: TOML file, environment overrides, working defaults.

Every key has a default, so `tracker serve` runs with no file at all (SQLite in the
working directory, web on 8082, every protocol on Traccar's port).  Precedence:
defaults < TOML file < environment variables:

=============================  ======================================  ==========
variable                       meaning                                 example
=============================  ======================================  ==========
TRACKER_DATABASE_URL           SQLAlchemy URL                          postgresql+psycopg2://tracker@db/tracker
TRACKER_WEB_PORT               HTTP port of the web UI and API         8082
TRACKER_WEB_INTERFACE          address the web server binds            0.0.0.0
TRACKER_DEVICES_UNKNOWN        "refuse" or "register"                  register
TRACKER_PROTOCOLS_<NAME>       listen addresses, comma separated       tcp:5023,udp:5023
=============================  ======================================  ==========
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from protocols import CODECS

UNKNOWN_POLICIES = ("refuse", "register")


class ConfigError(ValueError):
    """The configuration file or environment holds an invalid value."""


@dataclasses.dataclass(frozen=True, slots=True)
class ListenAddress:
    """Where one protocol listens: transport ("tcp", "udp" or "http"), port, interface."""

    transport: str
    port: int
    interface: str = ""

    @classmethod
    def parse(cls, text: str) -> "ListenAddress":
        """Parse "tcp:5023", "udp:5023", "http:5055" or "tcp:5023:interface=127.0.0.1"."""
        parts = text.strip().split(":")
        if len(parts) < 2 or parts[0] not in ("tcp", "udp", "http"):
            raise ConfigError(f"listen address {text!r}: expected tcp:PORT, udp:PORT or http:PORT")
        try:
            port = int(parts[1])
        except ValueError:
            raise ConfigError(f"listen address {text!r}: port is not a number") from None
        if not 0 <= port <= 65535:
            raise ConfigError(f"listen address {text!r}: port out of range")
        interface = ""
        for option in parts[2:]:
            key, _, value = option.partition("=")
            if key != "interface":
                raise ConfigError(f"listen address {text!r}: unknown option {key!r}")
            interface = value
        return cls(parts[0], port, interface)

    def __str__(self) -> str:
        suffix = f":interface={self.interface}" if self.interface else ""
        return f"{self.transport}:{self.port}{suffix}"


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """The whole server configuration.  Durations in seconds."""

    database_url: str = "sqlite:///tracker.db"
    web_port: int = 8082
    web_interface: str = ""
    protocols: Mapping[str, tuple[ListenAddress, ...]] = dataclasses.field(default_factory=dict)
    unknown_devices: str = "refuse"
    idle_timeout_s: float = 600.0          # close a device connection silent this long
    max_connections: int = 50_000          # per protocol and transport
    batch_max_positions: int = 2_000       # positions per database transaction
    batch_max_delay_s: float = 0.05        # wait this long to fill a batch
    writer_max_pending: int = 100_000      # positions queued before new data is refused
    # [events]: server-wide event thresholds, geofence.engine.Profile field names
    # (speed_limit_kn, overspeed_min_duration_s, hysteresis_m ...); devices and
    # groups override them with their settings (tracker.rules.SETTINGS).
    event_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # [push]: public_url, poll, coalesce_window, max_attempts; [push.<channel>]:
    # that channel's settings (tracker.push.<channel>); only configured channels run.
    push: Mapping[str, Any] = dataclasses.field(default_factory=dict)


DEFAULTS = Config()


def default_protocols() -> dict[str, tuple[ListenAddress, ...]]:
    """Every registered codec on its Traccar default addresses."""
    return {
        name: tuple(ListenAddress.parse(a) for a in codec.default_listen)
        for name, codec in CODECS.items()
    }


def load(path: str | os.PathLike | None = None,
         environ: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file at `path` (None: no file), then apply `environ` overrides."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"cannot read config {path}: {error}") from None
    return _build(data, environ)


def _build(data: Mapping[str, Any], environ: Mapping[str, str]) -> Config:
    database = _table(data, "database")
    web = _table(data, "web")
    devices = _table(data, "devices")
    server = _table(data, "server")
    protocols = default_protocols()
    for name, addresses in _table(data, "protocols").items():
        protocols[_known_protocol(name)] = _addresses(name, addresses)
    for key, value in environ.items():
        if key.startswith("TRACKER_PROTOCOLS_"):
            name = _known_protocol(key.removeprefix("TRACKER_PROTOCOLS_").lower())
            protocols[name] = _addresses(name, [v for v in value.split(",") if v.strip()])
    config = Config(
        database_url=environ.get("TRACKER_DATABASE_URL", database.get("url", DEFAULTS.database_url)),
        web_port=_int(environ.get("TRACKER_WEB_PORT", web.get("port", DEFAULTS.web_port)), "web.port"),
        web_interface=environ.get("TRACKER_WEB_INTERFACE", web.get("interface", "")),
        protocols=protocols,
        unknown_devices=environ.get("TRACKER_DEVICES_UNKNOWN", devices.get("unknown", "refuse")),
        idle_timeout_s=_number(server, "idle_timeout", DEFAULTS.idle_timeout_s, float),
        max_connections=_number(server, "max_connections", DEFAULTS.max_connections, int),
        batch_max_positions=_number(server, "batch_max_positions", DEFAULTS.batch_max_positions, int),
        batch_max_delay_s=_number(server, "batch_max_delay", DEFAULTS.batch_max_delay_s, float),
        writer_max_pending=_number(server, "writer_max_pending", DEFAULTS.writer_max_pending, int),
        event_defaults=dict(_table(data, "events")),
        push=dict(_table(data, "push")),
    )
    from tracker.rules import SettingsError, profile_defaults  # shapely: only when loading
    try:
        profile_defaults(config.event_defaults)
    except SettingsError as error:
        raise ConfigError(str(error)) from None
    if config.unknown_devices not in UNKNOWN_POLICIES:
        raise ConfigError(f"devices.unknown must be one of {UNKNOWN_POLICIES}, "
                          f"not {config.unknown_devices!r}")
    return config


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{name}] must be a table")
    return table


def _known_protocol(name: str) -> str:
    if name not in CODECS:
        raise ConfigError(f"unknown protocol {name!r} in configuration; "
                          f"known: {', '.join(sorted(CODECS))}")
    return name


def _addresses(name: str, addresses: Any) -> tuple[ListenAddress, ...]:
    if isinstance(addresses, str) or not isinstance(addresses, (list, tuple)):
        raise ConfigError(f"protocols.{name} must be a list like [\"tcp:5023\"]")
    return tuple(ListenAddress.parse(str(a)) for a in addresses)


def _number(table: Mapping[str, Any], key: str, default: float, kind: type) -> Any:
    """table[key] as `kind` (int or float), which must be positive."""
    value = table.get(key, default)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"server.{key} must be a number, not {value!r}") from None
    if number <= 0:
        raise ConfigError(f"server.{key} must be positive, not {value!r}")
    return number


def _int(value: Any, key: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be an integer, not {value!r}") from None
