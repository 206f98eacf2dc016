"""Assembles the running server: storage, batch writer, device listeners, web.

`TrackerServer(config, reactor).start()` migrates the database, loads the rule
configuration and the devices' rule states, starts the writer thread, the database
thread pool, the rule service's poll and tick and the notification dispatcher (on
its own thread pool), and listens on every configured
protocol address and on the web port.  `stop()` stops listening, commits what is queued and
stops the threads; it runs before reactor shutdown (SIGTERM, SIGINT).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from protocols import get_codec
from tracker.adapters import DeviceDatagramProtocol, DeviceStreamFactory, Ingest
from tracker.commands import CommandDispatcher
from tracker.config import Config
from tracker.devices import DeviceDirectory
from tracker.http_adapter import device_http_site
from tracker.push import build_notifiers, dispatcher_options
from tracker.push.dispatcher import Dispatcher
from tracker.rules import RuleService, profile_defaults
from tracker.storage import open_store
from tracker.writer import BatchWriter
from web.site import build_site

log = Logger()


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
        self.directory = DeviceDirectory(self.store, reactor, self.threadpool,
                                         config.unknown_devices)
        self.commands = CommandDispatcher(self.store, reactor, self.threadpool)
        self.rules = RuleService(self.store, reactor, self.threadpool,
                                 profile_defaults(config.event_defaults))
        # Notifications get threads of their own: a slow gateway never holds up
        # the database pool that ingestion and the API use.
        self.push_threadpool = ThreadPool(minthreads=1, maxthreads=2, name="push")
        self.notifications: Dispatcher | None = None
        self.listeners: dict[tuple[str, str], object] = {}   # (protocol, transport) -> port
        self.web_port = None

    def start(self) -> None:
        """Migrate, start threads and listen.  Raises if a port cannot be bound."""
        self.store.migrate()
        self.rules.load()
        self.notifications = Dispatcher(self.store, self.reactor, self.push_threadpool,
                                        build_notifiers(self.config.push),
                                        **dispatcher_options(self.config.push))
        self.threadpool.start()
        self.writer.start()
        self.commands.start()
        self.rules.start(self.writer.submit)
        self.push_threadpool.start()
        self.notifications.start()
        log.info("notifications: channels {channels}",
                 channels=", ".join(sorted(self.notifications.notifiers)) or "none configured")
        self.reactor.addSystemEventTrigger("before", "shutdown", self.stop)
        for name, addresses in self.config.protocols.items():
            ingest = Ingest(get_codec(name), self.directory, self.writer, self.rules,
                            commands=self.commands)
            for address in addresses:
                self.listeners[(name, address.transport)] = self._listen(ingest, address)
                log.info("{protocol} listening on {address}", protocol=name, address=str(address))
        site = build_site(self.store, self.threadpool, self.reactor, commands=self.commands,
                          config_changed=self.rules.poll)
        self.web_port = self.reactor.listenTCP(self.config.web_port, site,
                                               interface=self.config.web_interface)
        log.info("web and API on port {port}; database {dialect}",
                 port=self.web_port.getHost().port, dialect=self.store.dialect)

    def port_of(self, protocol: str, transport: str = "tcp") -> int:
        """The port number `protocol` listens on (useful with port 0 in tests)."""
        return self.listeners[(protocol, transport)].getHost().port

    def _listen(self, ingest: Ingest, address):
        if address.transport == "tcp":
            factory = DeviceStreamFactory(ingest, self.reactor, self.config.idle_timeout_s,
                                          self.config.max_connections)
            return self.reactor.listenTCP(address.port, factory, interface=address.interface)
        if address.transport == "http":
            site = device_http_site(ingest, self.reactor, self.config.idle_timeout_s)
            return self.reactor.listenTCP(address.port, site, interface=address.interface)
        udp = DeviceDatagramProtocol(ingest, self.reactor, self.config.idle_timeout_s,
                                     self.config.max_connections)
        return self.reactor.listenUDP(address.port, udp, interface=address.interface)

    @defer.inlineCallbacks
    def stop(self):
        """Stop listening, commit queued data, stop the threads."""
        ports = list(self.listeners.values())
        self.listeners = {}
        if self.web_port is not None:
            ports.append(self.web_port)
            self.web_port = None
        yield defer.DeferredList([defer.maybeDeferred(p.stopListening) for p in ports])
        self.commands.stop()
        self.rules.stop()
        yield self.writer.stop()
        if self.notifications is not None:
            yield self.notifications.stop()
        if self.push_threadpool.started:
            self.push_threadpool.stop()
        if self.threadpool.started:
            self.threadpool.stop()
        log.info("server stopped; all queued data committed")
