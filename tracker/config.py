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

Limits and transport security (every key optional; durations in seconds):

- ``[web]``: ``max_connections`` (1000 open HTTP connections, more are closed at
  once), ``header_timeout`` (10: a request's headers must be complete this long
  after its connection opens), ``tls_certificate`` and ``tls_key`` (PEM files,
  both or neither: the web port then speaks HTTPS only), ``behind_proxy`` (false;
  true declares that a TLS-terminating reverse proxy is in front) and
  ``secure_cookies`` (the session cookie's ``Secure`` flag; default true when
  the web port has TLS or ``behind_proxy`` is true, else false).
- ``[server]``: ``first_frame_timeout`` (30: a device connection that has sent
  no complete frame by then is closed), ``listen_backlog`` (1024 pending
  connections per TCP port; the kernel caps it at ``net.core.somaxconn``),
  ``http_max_connections`` (10000 per device HTTP port), ``http_header_timeout``
  (10, device HTTP ports), ``tls_certificate`` and ``tls_key`` (PEM files for
  ``ssl:PORT`` device listeners, both or neither).
- ``[devices]``: ``refused_cache`` (60: how long an unknown identifier's refusal
  is remembered), ``unknown_rate_per_source`` (5 unknown identifiers per second
  and source address), ``unknown_rate_global`` (50 per second in all),
  ``unknown_max_rows`` (10000 unknown-device rows kept).

Certificate and key paths are taken as written (relative ones from the working
directory) and must name readable files when the configuration is loaded.
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
TRANSPORTS = ("tcp", "ssl", "udp", "http")
MAX_LISTEN_BACKLOG = 65_535     # listen(2) takes an int; Linux caps it at somaxconn anyway


class ConfigError(ValueError):
    """The configuration file or environment holds an invalid value."""


@dataclasses.dataclass(frozen=True, slots=True)
class ListenAddress:
    """Where one protocol listens: transport, port, interface.

    Transports: "tcp", "ssl" (the same byte stream inside TLS, with the
    ``[server]`` certificate), "udp" and "http".
    """

    transport: str
    port: int
    interface: str = ""

    @classmethod
    def parse(cls, text: str) -> "ListenAddress":
        """Parse "tcp:5023", "ssl:5023", "udp:5023", "http:5055" or "tcp:5023:interface=127.0.0.1"."""
        parts = text.strip().split(":")
        if len(parts) < 2 or parts[0] not in TRANSPORTS:
            raise ConfigError(f"listen address {text!r}: expected tcp:PORT, ssl:PORT, "
                              "udp:PORT or http:PORT")
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
    # [web]: limits and transport security of the web and API port.
    web_max_connections: int = 1_000       # open HTTP connections; more are closed at once
    web_header_timeout_s: float = 10.0     # a request's headers must have arrived by then
    web_tls_certificate: str = ""          # PEM paths, both or neither ("": plain HTTP)
    web_tls_key: str = ""
    web_behind_proxy: bool = False         # a TLS-terminating reverse proxy is in front
    web_secure_cookies: bool = False       # default: web TLS or behind_proxy
    # [server]: device listeners.
    first_frame_timeout_s: float = 30.0    # close a device connection with no frame by then
    listen_backlog: int = 1_024            # pending connections per TCP port
    http_max_connections: int = 10_000     # per device HTTP port
    http_header_timeout_s: float = 10.0    # device HTTP ports
    device_tls_certificate: str = ""       # PEM paths for ssl:PORT listeners, both or neither
    device_tls_key: str = ""
    # [devices]: unknown identifiers (tracker.devices.DeviceDirectory).
    refused_cache_s: float = 60.0          # remember an unknown identifier's refusal this long
    unknown_rate_per_source: float = 5.0   # unknown identifiers per second and source address
    unknown_rate_global: float = 50.0      # unknown identifiers per second in all
    unknown_max_rows: int = 10_000         # unknown-device rows kept at most

    @property
    def web_tls(self) -> bool:
        """Whether the web port speaks HTTPS."""
        return bool(self.web_tls_certificate)


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
    web_certificate, web_key = _tls_paths(web, "web")
    device_certificate, device_key = _tls_paths(server, "server")
    _check_ssl_addresses(protocols, has_certificate=bool(device_certificate))
    listen_backlog = _number(server, "listen_backlog", DEFAULTS.listen_backlog, int)
    if listen_backlog > MAX_LISTEN_BACKLOG:
        raise ConfigError(f"server.listen_backlog must be at most {MAX_LISTEN_BACKLOG}, "
                          f"not {listen_backlog}")
    behind_proxy = _bool(web, "behind_proxy", DEFAULTS.web_behind_proxy, "web")
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
        web_max_connections=_number(web, "max_connections", DEFAULTS.web_max_connections, int,
                                    "web"),
        web_header_timeout_s=_number(web, "header_timeout", DEFAULTS.web_header_timeout_s,
                                     float, "web"),
        web_tls_certificate=web_certificate,
        web_tls_key=web_key,
        web_behind_proxy=behind_proxy,
        web_secure_cookies=_bool(web, "secure_cookies", bool(web_certificate) or behind_proxy,
                                 "web"),
        first_frame_timeout_s=_number(server, "first_frame_timeout",
                                      DEFAULTS.first_frame_timeout_s, float),
        listen_backlog=listen_backlog,
        http_max_connections=_number(server, "http_max_connections",
                                     DEFAULTS.http_max_connections, int),
        http_header_timeout_s=_number(server, "http_header_timeout",
                                      DEFAULTS.http_header_timeout_s, float),
        device_tls_certificate=device_certificate,
        device_tls_key=device_key,
        refused_cache_s=_number(devices, "refused_cache", DEFAULTS.refused_cache_s, float,
                                "devices"),
        unknown_rate_per_source=_number(devices, "unknown_rate_per_source",
                                        DEFAULTS.unknown_rate_per_source, float, "devices"),
        unknown_rate_global=_number(devices, "unknown_rate_global",
                                    DEFAULTS.unknown_rate_global, float, "devices"),
        unknown_max_rows=_number(devices, "unknown_max_rows", DEFAULTS.unknown_max_rows, int,
                                 "devices"),
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


def _check_ssl_addresses(protocols: Mapping[str, tuple[ListenAddress, ...]], *,
                         has_certificate: bool) -> None:
    """ssl: listeners need the [server] certificate and a codec that speaks TCP."""
    for name, addresses in protocols.items():
        for address in addresses:
            if address.transport != "ssl":
                continue
            if not any(a.startswith("tcp:") for a in CODECS[name].default_listen):
                raise ConfigError(f"protocols.{name}: {address} needs a stream protocol; "
                                  f"{name} is carried over "
                                  f"{', '.join(a.split(':')[0] for a in CODECS[name].default_listen)}"
                                  " only")
            if not has_certificate:
                raise ConfigError(f"protocols.{name}: {address} needs [server] tls_certificate "
                                  "and tls_key")


def _tls_paths(table: Mapping[str, Any], name: str) -> tuple[str, str]:
    """(certificate, key) paths of a table, both or neither; the files must be readable."""
    certificate = table.get("tls_certificate", "")
    key = table.get("tls_key", "")
    for option, value in (("tls_certificate", certificate), ("tls_key", key)):
        if not isinstance(value, str):
            raise ConfigError(f"{name}.{option} must be a path string, not {value!r}")
    if bool(certificate) != bool(key):
        raise ConfigError(f"{name}.tls_certificate and {name}.tls_key must be given together")
    for option, value in (("tls_certificate", certificate), ("tls_key", key)):
        if value:
            try:
                with open(value, "rb"):
                    pass
            except OSError as error:
                raise ConfigError(f"{name}.{option} {value!r} cannot be read: "
                                  f"{error.strerror or error}") from None
    return certificate, key


def _bool(table: Mapping[str, Any], key: str, default: bool, name: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{name}.{key} must be true or false, not {value!r}")
    return value


def _number(table: Mapping[str, Any], key: str, default: float, kind: type,
            name: str = "server") -> Any:
    """table[key] as `kind` (int or float), which must be positive.

    Numeric strings are accepted (as they always were); booleans are not, nor a
    fractional value where an integer is wanted.
    """
    value = table.get(key, default)
    if isinstance(value, bool):
        raise ConfigError(f"{name}.{key} must be a number, not {value!r}")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"{name}.{key} must be a whole number, not {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{name}.{key} must be a number, not {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise ConfigError(f"{name}.{key} must be positive and finite, not {value!r}")
    return number


def _int(value: Any, key: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be an integer, not {value!r}") from None
