"""The composition root: assembles the running server from storage, the domain
services, device listeners and the web site (the one module that imports every
layer; `tracker serve` runs it).

`TrackerServer(config, reactor).start()` migrates the database, loads the rule
configuration and the devices' rule states, starts the writer thread, the database
thread pool, the rule service's poll and tick and the notification dispatcher (on
its own thread pool), and listens on every configured
protocol address and on the web port.  `stop()` stops listening, commits what is queued and
stops the threads; it runs before reactor shutdown (SIGTERM, SIGINT).

Listening: every device address is a `ListenAddress` (a Twisted endpoint
description parsed by `tracker.config`); ``tcp:``, ``ssl:`` and ``http:`` bind a
TCP port, ``udp:`` a UDP one.  Port 0 (device or web) binds any free port:
`port_of`, `web_port_number` and `bound_ports` give the real numbers, the log
names them and ``tracker serve`` prints them.

Start-up limits: every TCP port (device, device HTTP, web) listens with
``[server] listen_backlog`` (1024; Twisted's default of 50 drops bursts of
reconnecting devices), or the address's own ``backlog=`` option.  Before
listening, the descriptors the configured caps can take at once are added up
(`descriptors_needed`) and RLIMIT_NOFILE's soft limit is raised towards the
hard limit (`raise_descriptor_limit`); if even the hard limit is short, a
warning names the numbers and the server starts anyway:
the caps are worst cases that few deployments reach, and refusing to start
would turn a generous configuration into an outage.  The connection beyond the
limit then fails at ``accept`` (Twisted logs it and keeps serving the others).

TLS: with ``[web] tls_certificate``/``tls_key`` the web port speaks HTTPS only;
``ssl:PORT`` device listeners use the ``[server]`` pair.  The certificate file
may hold the whole chain (leaf first, as Let's Encrypt's ``fullchain.pem``).
Files are read once at start: after a renewal, restart the server.
"""

from __future__ import annotations

import dataclasses
import gc
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from protocols import get_codec
from tracker.adapters import DeviceDatagramProtocol, DeviceStreamFactory, Ingest
from tracker.commands import CommandDispatcher
from tracker.config import Config, ListenAddress
from tracker.devices import DeviceDirectory
from tracker.http_adapter import device_http_site
from tracker.push import build_notifiers, dispatcher_options
from tracker.push.confirm import confirmation_mailer
from tracker.push.dispatcher import Dispatcher
from tracker.rules import RuleService, profile_defaults
from tracker.storage import open_store
from tracker.writer import BatchWriter
from web.live import LiveHub
from web.site import build_site

log = Logger()

DESCRIPTOR_MARGIN = 64     # database pool, threads, log and data files, the resolver...


class StartupError(RuntimeError):
    """The server cannot start with this configuration (e.g. an unusable certificate)."""


def descriptors_needed(config: Config) -> int:
    """File descriptors the configured caps can hold open at once.

    Per TCP or ssl: device listener ``[server] max_connections`` connections,
    per device HTTP listener ``http_max_connections``, the web port
    ``[web] max_connections``; one more for each listening socket (UDP ports
    take only that one), plus `DESCRIPTOR_MARGIN`.
    """
    needed = config.web_max_connections + 1 + DESCRIPTOR_MARGIN
    for addresses in config.protocols.values():
        for address in addresses:
            needed += 1
            if address.transport in ("tcp", "ssl"):
                needed += config.max_connections
            elif address.transport == "http":
                needed += config.http_max_connections
    return needed


@dataclasses.dataclass(frozen=True, slots=True)
class DescriptorBudget:
    """RLIMIT_NOFILE against what the caps need; `soft` and `hard` after any raise."""

    needed: int
    soft: int
    hard: int
    raised_from: int | None = None    # the soft limit before it was raised, if it was

    @property
    def fits(self) -> bool:
        return self.soft == resource.RLIM_INFINITY or self.soft >= self.needed


def raise_descriptor_limit(needed: int, *, getrlimit: Callable | None = None,
                           setrlimit: Callable | None = None) -> DescriptorBudget:
    """Raise RLIMIT_NOFILE's soft limit to the hard one when it is below `needed`.

    The soft limit goes to the hard limit (to `needed` when the hard limit is
    unlimited), never down.  When that fails or the hard limit is still below
    `needed`, a warning names the numbers; nothing is refused.  `getrlimit` and
    `setrlimit` default to the `resource` module's (injected by tests).
    """
    getrlimit = getrlimit or resource.getrlimit
    setrlimit = setrlimit or resource.setrlimit
    soft, hard = getrlimit(resource.RLIMIT_NOFILE)
    budget = DescriptorBudget(needed, soft, hard)
    if not budget.fits and soft != hard:
        target = needed if hard == resource.RLIM_INFINITY else hard
        try:
            setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            log.warn("cannot raise the open file limit from {soft} to {target}: {error}",
                     soft=soft, target=target, error=error)
        else:
            new_soft, new_hard = getrlimit(resource.RLIMIT_NOFILE)
            budget = DescriptorBudget(needed, new_soft, new_hard, raised_from=soft)
            log.info("open file limit raised from {old} to {soft} (hard limit {hard})",
                     old=soft, soft=new_soft, hard=new_hard)
    if not budget.fits:
        log.warn("the configured connection caps need {needed} file descriptors but the "
                 "open file limit is {soft} (hard limit {hard}): connections beyond it will "
                 "be refused at accept; raise the hard limit (ulimit -Hn, systemd "
                 "LimitNOFILE=) or lower [server] max_connections, http_max_connections "
                 "or [web] max_connections", needed=needed, soft=budget.soft,
                 hard=budget.hard)
    return budget


def tls_options(certificate_path: str, key_path: str):
    """Server TLS options (`twisted.internet.ssl.CertificateOptions`) from PEM files.

    The certificate file holds the server certificate first, then any
    intermediates (a "full chain", as Let's Encrypt's ``fullchain.pem``); the key
    file an unencrypted private key.  Raises `StartupError` naming the files when
    they cannot be read or parsed, or when the key does not belong to the
    certificate.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from OpenSSL import SSL
    from twisted.internet import ssl

    try:
        certificates = x509.load_pem_x509_certificates(Path(certificate_path).read_bytes())
        key = load_pem_private_key(Path(key_path).read_bytes(), password=None)
        # pyOpenSSL's Context takes cryptography's objects; Twisted's hints name
        # only pyOpenSSL's own (PKey, X509), which are deprecated.
        options = ssl.CertificateOptions(privateKey=key,  # type: ignore[arg-type]
                                         certificate=certificates[0],  # type: ignore[arg-type]
                                         extraCertChain=certificates[1:] or None)  # type: ignore[arg-type]
        options.getContext()     # builds the context now: a wrong key fails here
    except (OSError, ValueError, TypeError, SSL.Error) as error:
        raise StartupError(f"TLS certificate {certificate_path} / key {key_path} "
                           f"unusable: {error}") from None
    return options


class TrackerServer:
    """The whole server in one reactor; see the module docstring."""

    def __init__(self, config: Config, reactor, store=None) -> None:
        self.config = config
        self.reactor = reactor
        self.store = store if store is not None else open_store(config.database_url)
        self.threadpool = ThreadPool(minthreads=1, maxthreads=8, name="database")
        self.writer = BatchWriter(self.store, reactor, max_positions=config.batch_max_positions,
                                  max_delay_s=config.batch_max_delay_s,
                                  max_pending=config.writer_max_pending)
        self.directory = DeviceDirectory(
            self.store, reactor, self.threadpool, config.unknown_devices,
            refused_cache_s=config.refused_cache_s,
            unknown_rate_per_source=config.unknown_rate_per_source,
            unknown_rate_global=config.unknown_rate_global,
            unknown_max_rows=config.unknown_max_rows)
        self.commands = CommandDispatcher(self.store, reactor, self.threadpool)
        self.rules = RuleService(self.store, reactor, self.threadpool,
                                 profile_defaults(config.event_defaults))
        self.writer.observers.append(self.rules)    # rule state adopted once committed
        # /api/socket: pushes what was committed, read back on the database pool
        self.live = LiveHub(self.store, self.threadpool, reactor)
        self.writer.observers.append(self.live)
        # Notifications get threads of their own: a slow gateway never holds up
        # the database pool that ingestion and the API use.
        self.push_threadpool = ThreadPool(minthreads=1, maxthreads=2, name="push")
        self.notifications: Dispatcher | None = None
        # (protocol, transport) -> its first listening port; every one in `listening`
        self.listeners: dict[tuple[str, str], IListeningPort] = {}
        self.listening: list[tuple[str, ListenAddress, IListeningPort]] = []
        self.web_port: IListeningPort | None = None
        self.descriptors: DescriptorBudget | None = None        # set by start()

    def start(self) -> None:
        """Migrate, start threads, check the descriptor limit and listen.

        Raises if a port cannot be bound, `StartupError` if a TLS certificate is
        unusable (checked before anything starts).
        """
        web_tls = device_tls = None
        if self.config.web_tls:
            web_tls = tls_options(self.config.web_tls_certificate, self.config.web_tls_key)
        if self.config.device_tls_certificate:
            device_tls = tls_options(self.config.device_tls_certificate,
                                     self.config.device_tls_key)
        self.store.migrate()
        self.rules.load()
        # The device states just loaded live as long as the process: keep the
        # collector's oldest generation from walking them (a full collection over
        # 10,000 states would hold the reactor 50-70 ms; benchmarks/rule_tick.py).
        gc.freeze()
        self.notifications = Dispatcher(self.store, self.reactor, self.push_threadpool,
                                        build_notifiers(self.config.push),
                                        **dispatcher_options(self.config.push))
        self.threadpool.start()
        self.directory.start()
        self.writer.start()
        self.commands.start()
        self.rules.start(self.writer.submit)
        self.push_threadpool.start()
        self.notifications.start()
        log.info("notifications: channels {channels}",
                 channels=", ".join(sorted(self.notifications.notifiers)) or "none configured")
        self.reactor.addSystemEventTrigger("before", "shutdown", self.stop)
        self.check_descriptor_limit()
        self.listen(web_tls=web_tls, device_tls=device_tls)

    def check_descriptor_limit(self, **resource_functions) -> DescriptorBudget:
        """Raise RLIMIT_NOFILE for the configured caps; see `raise_descriptor_limit`.

        The result is kept in `descriptors` (needed, soft, hard, raised_from).
        """
        self.descriptors = raise_descriptor_limit(descriptors_needed(self.config),
                                                  **resource_functions)
        return self.descriptors

    def listen(self, *, web_tls=None, device_tls=None) -> None:
        """Listen on every protocol address and the web port.

        `web_tls` and `device_tls` are `tls_options` results (None: no TLS);
        ``ssl:`` device addresses need `device_tls`.
        """
        for name, addresses in self.config.protocols.items():
            ingest = Ingest(get_codec(name), self.directory, self.writer, self.rules,
                            commands=self.commands)
            for address in addresses:
                port = self._listen(ingest, address, device_tls)
                self.listeners.setdefault((name, address.transport), port)
                self.listening.append((name, address, port))
                bound = dataclasses.replace(address, port=_port_number(port))
                log.info("{protocol} listening on {address}", protocol=name, address=str(bound))
        confirmations = confirmation_mailer(
            self.notifications.notifiers if self.notifications is not None else {},
            self.reactor, self.push_threadpool,
            public_url=str(self.config.push.get("public_url", "")))
        site = build_site(self.store, self.threadpool, self.reactor,
                          secure_cookies=self.config.web_secure_cookies, commands=self.commands,
                          config_changed=self.rules.poll, counters=self.counters,
                          confirmations=confirmations, live=self.live,
                          max_connections=self.config.web_max_connections,
                          header_timeout_s=self.config.web_header_timeout_s)
        backlog = self.config.listen_backlog
        if web_tls is not None:
            self.web_port = self.reactor.listenSSL(self.config.web_port, site, web_tls,
                                                   backlog=backlog,
                                                   interface=self.config.web_interface)
        else:
            self.web_port = self.reactor.listenTCP(self.config.web_port, site, backlog=backlog,
                                                   interface=self.config.web_interface)
        log.info("web and API on port {port} ({scheme}); database {dialect}",
                 port=self.web_port_number(), scheme="https" if web_tls else "http",
                 dialect=self.store.dialect)

    def counters(self) -> dict[str, int]:
        """What an operator watches, since start (``/api/server/health``): the
        batch writer's commits, retried failures, quarantined and dropped batches
        and pending positions; unknown-device refusals; rule tick slices; open
        connections per listener (``connections.<protocol>.<transport>``)."""
        writer, directory = self.writer, self.directory
        counters = {
            "writer.committedBatches": writer.committed_batches,
            "writer.failedAttempts": writer.failed_attempts,
            "writer.quarantined": writer.quarantined,
            "writer.dropped": writer.dropped,
            "writer.pending": writer.pending,
            "devices.refusedUnknown": directory.refused_unknown,
            "devices.rateLimitedUnknown": directory.rate_limited_unknown,
            "devices.recordedUnknown": directory.recorded_unknown,
            "devices.droppedUnknown": directory.dropped_unknown,
            "rules.tickSlices": self.rules.tick_slices,
        }
        for (name, transport), port in self.listeners.items():
            factory = getattr(port, "factory", None) or getattr(port, "protocol", None)
            connections = getattr(factory, "connections", None)
            if isinstance(connections, int):
                counters[f"connections.{name}.{transport}"] = connections
        return counters

    def port_of(self, protocol: str, transport: str = "tcp") -> int:
        """The port number `protocol` listens on over `transport` (its first such
        address): the bound one, also with port 0 in the configuration."""
        return _port_number(self.listeners[(protocol, transport)])

    def web_port_number(self) -> int:
        """The port number the web site and API listen on (after `listen`)."""
        if self.web_port is None:
            raise RuntimeError("the web site is not listening")
        return _port_number(self.web_port)

    def bound_ports(self) -> list[tuple[str, int]]:
        """Every listening port as (name, port number): ``("web", 8082)`` first,
        then ``("<protocol>/<transport>", port)`` in configuration order (a
        protocol with two addresses of one transport appears twice)."""
        ports = [("web", self.web_port_number())] if self.web_port is not None else []
        ports += [(f"{name}/{address.transport}", _port_number(port))
                  for name, address, port in self.listening]
        return ports

    def _listen(self, ingest: Ingest, address: ListenAddress,
                device_tls: Any = None) -> IListeningPort:
        backlog = self.config.listen_backlog if address.backlog is None else address.backlog
        if address.transport in ("tcp", "ssl"):
            factory = DeviceStreamFactory(ingest, self.reactor, self.config.idle_timeout_s,
                                          self.config.max_connections,
                                          first_frame_timeout_s=self.config.first_frame_timeout_s)
            if address.transport == "ssl":
                if device_tls is None:
                    raise StartupError(f"{ingest.codec.name} on {address} needs "
                                       "[server] tls_certificate and tls_key")
                return self.reactor.listenSSL(address.port, factory, device_tls,
                                              backlog=backlog, interface=address.interface)
            return self.reactor.listenTCP(address.port, factory, backlog=backlog,
                                          interface=address.interface)
        if address.transport == "http":
            site = device_http_site(ingest, self.reactor, self.config.idle_timeout_s,
                                    max_connections=self.config.http_max_connections,
                                    header_timeout_s=self.config.http_header_timeout_s)
            return self.reactor.listenTCP(address.port, site, backlog=backlog,
                                          interface=address.interface)
        udp = DeviceDatagramProtocol(ingest, self.reactor, self.config.idle_timeout_s,
                                     self.config.max_connections)
        return self.reactor.listenUDP(address.port, udp, interface=address.interface)

    @defer.inlineCallbacks
    def stop(self):
        """Stop listening, commit queued data, stop the threads."""
        ports = [port for _, _, port in self.listening]
        self.listeners = {}
        self.listening = []
        if self.web_port is not None:
            ports.append(self.web_port)
            self.web_port = None
        yield defer.DeferredList([defer.maybeDeferred(p.stopListening) for p in ports])
        self.live.stop()          # open WebSockets are closed (1001), clients reconnect
        for port in ports:       # HTTP sites' suppressed-log summaries (the directory flushes its own)
            limited_log = getattr(getattr(port, "factory", None), "limited_log", None)
            if limited_log is not None:
                limited_log.flush()
        self.commands.stop()
        self.rules.stop()
        yield defer.maybeDeferred(self.directory.stop)
        yield self.writer.stop()
        if self.notifications is not None:
            yield self.notifications.stop()
        if self.push_threadpool.started:
            self.push_threadpool.stop()
        if self.threadpool.started:
            self.threadpool.stop()
        log.info("server stopped; all queued data committed")


def _port_number(port: IListeningPort) -> int:
    """The number a listening TCP or UDP port is bound to."""
    return int(port.getHost().port)  # type: ignore[attr-defined]  # IAddress has no port; IPv4/6 do
