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

Listen addresses (``[protocols]``, ``TRACKER_PROTOCOLS_<NAME>``) are Twisted
endpoint descriptions: ``tcp:5023``, ``tcp:port=5023:interface=10.0.0.1``,
``tcp:5023:backlog=4096``, ``ssl:5024``, ``udp:5023``, ``http:5055`` (see
`ListenAddress`); port 0 (here or in ``[web] port``) binds any free port, and
``tracker serve`` prints the ports it bound.

Unknown tables and keys are refused when the file is loaded, naming the known
ones (`KEYS`), so a misspelt key is an error rather than a silent default.

Certificate and key paths are taken as written (relative ones from the working
directory) and must name readable files when the configuration is loaded.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twisted.internet import endpoints

from protocols import CODECS

UNKNOWN_POLICIES = ("refuse", "register")
TRANSPORTS = ("tcp", "ssl", "udp", "http")
MAX_LISTEN_BACKLOG = 65_535     # listen(2) takes an int; Linux caps it at somaxconn anyway

# The keys of each table; anything else in the file is refused at load (a typo
# must not silently fall back to a default).  [protocols] (codec names), [events]
# (geofence.engine.Profile fields) and [push] (its own keys and channel tables)
# are checked by what reads them.
KEYS: Mapping[str, tuple[str, ...]] = {
    "database": ("url",),
    "web": ("port", "interface", "max_connections", "header_timeout", "tls_certificate",
            "tls_key", "behind_proxy", "secure_cookies"),
    "devices": ("unknown", "refused_cache", "unknown_rate_per_source", "unknown_rate_global",
                "unknown_max_rows"),
    "server": ("idle_timeout", "max_connections", "batch_max_positions", "batch_max_delay",
               "writer_max_pending", "first_frame_timeout", "listen_backlog",
               "http_max_connections", "http_header_timeout", "tls_certificate", "tls_key"),
}
SECTIONS = (*KEYS, "protocols", "events", "push")


class ConfigError(ValueError):
    """The configuration file or environment holds an invalid value."""


@dataclasses.dataclass(frozen=True, slots=True)
class ListenAddress:
    """Where one protocol listens: transport, port, interface and, optionally, backlog.

    Written as a Twisted endpoint description (``serverFromString`` syntax):
    ``tcp:5023``, ``tcp:port=5023:interface=10.0.0.1``, ``tcp:5023:backlog=4096``,
    ``tcp:5023:interface=\\:\\:1`` (colons in an option escaped with a backslash).
    Transports: "tcp"; "ssl" (the same byte stream inside TLS, with the
    ``[server]`` certificate, so the options are tcp's: port, interface,
    backlog); "udp" (port, interface); "http" (an HTTP server on a TCP port:
    tcp's options).  Port 0 binds a free port (`TrackerServer.port_of` tells
    which).  ``backlog`` None means ``[server] listen_backlog``.
    """

    transport: str
    port: int
    interface: str = ""
    backlog: int | None = None

    @classmethod
    def parse(cls, text: str) -> "ListenAddress":
        """Parse an endpoint description; ConfigError says what is wrong with it.

        tcp, ssl and http go through Twisted's own server endpoint parser
        (``endpoints._parseServer`` with its tcp option set); udp, which Twisted
        has no server endpoint string for, through its tokenizer.
        """
        description = text.strip()
        transport, colon, rest = description.partition(":")
        if not colon or transport not in TRANSPORTS:
            raise ConfigError(f"listen address {text!r}: expected tcp:PORT, ssl:PORT, "
                              "udp:PORT or http:PORT (Twisted endpoint syntax, e.g. "
                              "tcp:port=5023:interface=10.0.0.1)")
        parser = _udp_options if transport == "udp" else endpoints._parseTCP
        signature = inspect.signature(parser)
        options = [name for name in signature.parameters if name != "factory"]
        positional, named = endpoints._parse(description)     # Twisted's tokenizer
        try:   # the options as written, checked against the parser's signature
            given = signature.bind(None, *positional[1:], **named).arguments
        except TypeError:
            raise ConfigError(f"listen address {text!r}: {transport} takes the options "
                              f"{', '.join(options)}" + _SSL_HINT.get(transport, "")) from None
        keywords: dict[str, Any]
        try:
            if transport == "udp":
                (port, _), keywords = _udp_options(None, *positional[1:], **named)
            else:   # ssl and http listen on a TCP port: the same options
                _, (port, _), keywords = endpoints._parseServer(f"tcp:{rest}", None)
        except ValueError:
            raise ConfigError(f"listen address {text!r}: port and backlog must be "
                              "whole numbers") from None
        if not 0 <= port <= 65535:
            raise ConfigError(f"listen address {text!r}: port out of range (0 to 65535)")
        backlog = keywords["backlog"] if "backlog" in given else None
        if backlog is not None and not 0 < backlog <= MAX_LISTEN_BACKLOG:
            raise ConfigError(f"listen address {text!r}: backlog must be from 1 to "
                              f"{MAX_LISTEN_BACKLOG}")
        return cls(transport, port, keywords["interface"], backlog)

    def __str__(self) -> str:
        """The endpoint description, e.g. ``tcp:5023:interface=127.0.0.1``."""
        parts = [self.transport, str(self.port)]
        if self.interface:
            parts.append(f"interface={endpoints.quoteStringArgument(self.interface)}")
        if self.backlog is not None:
            parts.append(f"backlog={self.backlog}")
        return ":".join(parts)


_SSL_HINT = {"ssl": "; its certificate is [server] tls_certificate and tls_key"}


def _udp_options(factory: object, port: str, interface: str = ""
                 ) -> tuple[tuple[int, object], dict[str, Any]]:
    """A udp: description's options, shaped as Twisted's ``_parseTCP`` result."""
    return (int(port), factory), {"interface": interface}


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
    _check_keys(data)
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
        web_port=_port(environ.get("TRACKER_WEB_PORT", web.get("port", DEFAULTS.web_port)),
                       "web.port"),
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


def _check_keys(data: Mapping[str, Any]) -> None:
    """Refuse unknown tables and keys, naming the known ones."""
    from tracker.push import DISPATCHER_KEYS
    from tracker.push.base import CHANNELS

    for section in data:
        if section not in SECTIONS:
            raise ConfigError(f"unknown section [{section}] in configuration"
                              f"{_did_you_mean(section, SECTIONS)}; known sections: "
                              f"{', '.join(sorted(SECTIONS))}")
    known_keys = {**KEYS, "push": (*DISPATCHER_KEYS, *CHANNELS)}
    for section, keys in known_keys.items():
        for key in _table(data, section):
            if key not in keys:
                raise ConfigError(f"unknown key {section}.{key} in configuration"
                                  f"{_did_you_mean(key, keys)}; known keys of [{section}]: "
                                  f"{', '.join(sorted(keys))}")


def _did_you_mean(word: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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


def _port(value: Any, key: str) -> int:
    """A port number, 0 (any free port) to 65535."""
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be an integer, not {value!r}")
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be an integer, not {value!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{key} must be from 0 (any free port) to 65535, not {value!r}")
    return port
