"""TrackerServer start-up limits: listen backlog, RLIMIT_NOFILE, TLS options, and the
new limit values handed to the components.

The components are replaced by recorders with the agreed signatures, so these tests
check the wiring only (what each component does with its values is tested with it);
the listening itself runs on `MemoryReactorClock`, which records ``backlog``.
"""

from __future__ import annotations

import resource

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import DatagramProtocol, ServerFactory
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent

from tests.tlscerts import make_tls_files
from tracker import app as server_module
from tracker.app import (
    DESCRIPTOR_MARGIN,
    StartupError,
    TrackerServer,
    descriptors_needed,
    raise_descriptor_limit,
    tls_options,
)
from tracker.config import Config, ListenAddress
from tracker.storage import open_store

NOFILE = resource.RLIMIT_NOFILE


class UdpPort:
    def __init__(self, port):
        self.port = port

    def getHost(self):
        return IPv4Address("UDP", "0.0.0.0", self.port)


class Reactor(MemoryReactorClock):
    """MemoryReactorClock plus a recorded listenUDP."""

    def __init__(self):
        super().__init__()
        self.udpServers = []

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        self.udpServers.append((port, protocol, interface))
        return UdpPort(port)


class Recorder:
    """Stands in for the components; records how the server built them."""

    def __init__(self):
        self.directory = None
        self.stream = []
        self.http = []
        self.site = None

    def install(self, monkeypatch):
        recorder = self

        class FakeDirectory:
            def __init__(self, store, reactor, threadpool, unknown_policy, cache_s=300.0, *,
                         refused_cache_s, unknown_rate_per_source, unknown_rate_global,
                         unknown_max_rows, bookkeeping_interval_s=1.0):
                recorder.directory = dict(
                    unknown_policy=unknown_policy, refused_cache_s=refused_cache_s,
                    unknown_rate_per_source=unknown_rate_per_source,
                    unknown_rate_global=unknown_rate_global, unknown_max_rows=unknown_max_rows)

        def stream_factory(ingest, reactor, idle_timeout_s, max_connections, *,
                           first_frame_timeout_s):
            recorder.stream.append(dict(protocol=ingest.codec.name, idle_timeout_s=idle_timeout_s,
                                        max_connections=max_connections,
                                        first_frame_timeout_s=first_frame_timeout_s))
            return ServerFactory()

        def http_site(ingest, reactor, idle_timeout_s, *, max_connections, header_timeout_s):
            recorder.http.append(dict(protocol=ingest.codec.name, max_connections=max_connections,
                                      header_timeout_s=header_timeout_s))
            return ServerFactory()

        def build_site(store, threadpool, reactor, *, secure_cookies, commands, config_changed,
                       max_connections, header_timeout_s, counters, confirmations, live):
            recorder.site = dict(secure_cookies=secure_cookies, max_connections=max_connections,
                                 header_timeout_s=header_timeout_s)
            return ServerFactory()

        class FakeUdp(DatagramProtocol):
            def __init__(self, ingest, reactor, idle_timeout_s, max_peers):
                pass

        monkeypatch.setattr(server_module, "DeviceDirectory", FakeDirectory)
        monkeypatch.setattr(server_module, "DeviceStreamFactory", stream_factory)
        monkeypatch.setattr(server_module, "device_http_site", http_site)
        monkeypatch.setattr(server_module, "build_site", build_site)
        monkeypatch.setattr(server_module, "DeviceDatagramProtocol", FakeUdp)
        return self


PROTOCOLS = {
    "gt06": (ListenAddress("tcp", 6023), ListenAddress("udp", 6023),
             ListenAddress("ssl", 6024, "127.0.0.1")),
    "osmand": (ListenAddress("http", 6055),),
    "watch": (ListenAddress("tcp", 6093),),
}


def make_server(tmp_path, monkeypatch, **config):
    recorder = Recorder().install(monkeypatch)
    config.setdefault("protocols", PROTOCOLS)
    reactor = Reactor()
    store = open_store(f"sqlite:///{tmp_path / 'tracker.db'}")
    return TrackerServer(Config(**config), reactor, store=store), reactor, recorder


# -- backlog and component values ----------------------------------------------------

def test_every_tcp_port_listens_with_the_configured_backlog(tmp_path, monkeypatch):
    server, reactor, _ = make_server(tmp_path, monkeypatch, web_port=6082,
                                     web_interface="127.0.0.1")
    server.listen(device_tls=object())
    tcp = {(port, interface): backlog for port, _, backlog, interface in reactor.tcpServers}
    assert tcp[(6023, "")] == 1024
    assert tcp[(6055, "")] == 1024
    assert tcp[(6093, "")] == 1024
    assert tcp[(6082, "127.0.0.1")] == 1024
    ((port, _, _, backlog, interface),) = reactor.sslServers
    assert (port, backlog, interface) == (6024, 1024, "127.0.0.1")
    assert [(p, i) for p, _, i in reactor.udpServers] == [(6023, "")]
    assert set(server.listeners) == {("gt06", "tcp"), ("gt06", "udp"), ("gt06", "ssl"),
                                     ("osmand", "http"), ("watch", "tcp")}
    assert server.port_of("gt06", "ssl") == 6024


def test_a_configured_backlog_is_used(tmp_path, monkeypatch):
    server, reactor, _ = make_server(tmp_path, monkeypatch, listen_backlog=77,
                                     protocols={"gt06": (ListenAddress("tcp", 6023),)})
    server.listen()
    assert [backlog for _, _, backlog, _ in reactor.tcpServers] == [77, 77]


def test_web_tls_listens_with_ssl_and_the_given_options(tmp_path, monkeypatch):
    server, reactor, _ = make_server(tmp_path, monkeypatch, web_port=6443, protocols={})
    options = object()
    server.listen(web_tls=options)
    assert reactor.tcpServers == []
    ((port, _, context, backlog, _),) = reactor.sslServers
    assert (port, context, backlog) == (6443, options, 1024)


def test_an_ssl_address_without_device_tls_options_is_refused(tmp_path, monkeypatch):
    server, _, _ = make_server(tmp_path, monkeypatch,
                               protocols={"gt06": (ListenAddress("ssl", 6024),)})
    with pytest.raises(StartupError, match="gt06 on ssl:6024 needs"):
        server.listen()


def test_limits_reach_the_components(tmp_path, monkeypatch):
    server, _, recorder = make_server(
        tmp_path, monkeypatch, unknown_devices="register", idle_timeout_s=120.0,
        max_connections=321, first_frame_timeout_s=7.0, http_max_connections=55,
        http_header_timeout_s=3.0, web_max_connections=66, web_header_timeout_s=4.0,
        web_secure_cookies=True, refused_cache_s=11.0, unknown_rate_per_source=2.0,
        unknown_rate_global=20.0, unknown_max_rows=99)
    assert recorder.directory == dict(unknown_policy="register", refused_cache_s=11.0,
                                      unknown_rate_per_source=2.0, unknown_rate_global=20.0,
                                      unknown_max_rows=99)
    server.listen(device_tls=object())
    stream = dict(idle_timeout_s=120.0, max_connections=321, first_frame_timeout_s=7.0)
    assert recorder.stream == [dict(protocol="gt06", **stream), dict(protocol="gt06", **stream),
                               dict(protocol="watch", **stream)]
    assert recorder.http == [dict(protocol="osmand", max_connections=55, header_timeout_s=3.0)]
    assert recorder.site == dict(secure_cookies=True, max_connections=66, header_timeout_s=4.0)


# -- descriptors -----------------------------------------------------------------------

def test_descriptors_needed_adds_up_the_caps():
    config = Config(protocols=PROTOCOLS, max_connections=100, http_max_connections=50,
                    web_max_connections=20)
    # gt06 tcp, ssl; watch tcp: 3 x (100 + 1); gt06 udp: 1; osmand http: 50 + 1; web 20 + 1
    assert descriptors_needed(config) == 3 * 101 + 1 + 51 + 21 + DESCRIPTOR_MARGIN


class Limits:
    """getrlimit/setrlimit over one (soft, hard) pair, with setrlimit's checks."""

    def __init__(self, soft, hard, fail=None):
        self.value = (soft, hard)
        self.calls = []
        self.fail = fail

    def getrlimit(self, which):
        assert which == NOFILE
        return self.value

    def setrlimit(self, which, value):
        assert which == NOFILE
        self.calls.append(value)
        if self.fail is not None:
            raise self.fail
        soft, hard = value
        assert hard == self.value[1], "the hard limit must not change"
        assert hard == resource.RLIM_INFINITY or soft <= hard
        self.value = value


def warnings(events):
    return [formatEvent(e) for e in events if e["log_level"].name == "warn"]


def test_soft_limit_below_need_is_raised_to_the_hard_limit():
    limits = Limits(1024, 65_536)
    with capturedLogs() as events:
        budget = raise_descriptor_limit(5000, getrlimit=limits.getrlimit,
                                        setrlimit=limits.setrlimit)
    assert limits.calls == [(65_536, 65_536)]
    assert (budget.needed, budget.soft, budget.hard, budget.raised_from) == (5000, 65_536,
                                                                               65_536, 1024)
    assert budget.fits
    assert warnings(events) == []


def test_hard_limit_below_need_warns_with_the_numbers():
    limits = Limits(1024, 4096)
    with capturedLogs() as events:
        budget = raise_descriptor_limit(561_129, getrlimit=limits.getrlimit,
                                        setrlimit=limits.setrlimit)
    assert limits.calls == [(4096, 4096)]
    assert (budget.soft, budget.hard, budget.fits) == (4096, 4096, False)
    (warning,) = warnings(events)
    assert "561129" in warning and "4096" in warning and "max_connections" in warning


def test_enough_descriptors_change_nothing():
    limits = Limits(10_000, 20_000)
    with capturedLogs() as events:
        budget = raise_descriptor_limit(10_000, getrlimit=limits.getrlimit,
                                        setrlimit=limits.setrlimit)
    assert limits.calls == []
    assert (budget.soft, budget.raised_from, budget.fits) == (10_000, None, True)
    assert warnings(events) == []


def test_soft_equal_to_hard_and_short_only_warns():
    limits = Limits(2048, 2048)
    with capturedLogs() as events:
        budget = raise_descriptor_limit(3000, getrlimit=limits.getrlimit,
                                        setrlimit=limits.setrlimit)
    assert limits.calls == []
    assert not budget.fits
    assert len(warnings(events)) == 1


def test_unlimited_hard_limit_raises_the_soft_limit_to_the_need():
    limits = Limits(1024, resource.RLIM_INFINITY)
    budget = raise_descriptor_limit(5000, getrlimit=limits.getrlimit, setrlimit=limits.setrlimit)
    assert limits.calls == [(5000, resource.RLIM_INFINITY)]
    assert budget.soft == 5000 and budget.fits


def test_a_refused_raise_is_a_warning_not_a_crash():
    limits = Limits(1024, 65_536, fail=ValueError("not allowed"))
    with capturedLogs() as events:
        budget = raise_descriptor_limit(5000, getrlimit=limits.getrlimit,
                                        setrlimit=limits.setrlimit)
    assert (budget.soft, budget.fits) == (1024, False)
    texts = warnings(events)
    assert any("not allowed" in t for t in texts)
    assert any("5000" in t and "1024" in t for t in texts)


def test_the_server_keeps_its_descriptor_numbers(tmp_path, monkeypatch):
    server, _, _ = make_server(tmp_path, monkeypatch, max_connections=10)
    limits = Limits(100, 1000)
    budget = server.check_descriptor_limit(getrlimit=limits.getrlimit,
                                           setrlimit=limits.setrlimit)
    assert server.descriptors is budget
    assert budget.needed == descriptors_needed(server.config)
    assert (budget.soft, budget.hard, budget.raised_from) == (1000, 1000, 100)


def test_the_real_resource_module_is_used_by_default():
    soft, hard = resource.getrlimit(NOFILE)
    budget = raise_descriptor_limit(1)
    assert (budget.soft, budget.hard) == (soft, hard)
    assert budget.fits


# -- TLS options -------------------------------------------------------------------

def test_tls_options_load_a_full_chain(tmp_path):
    files = make_tls_files(tmp_path)
    options = tls_options(str(files.certificate), str(files.key))
    assert options.extraCertChain and len(options.extraCertChain) == 1
    assert options.getContext() is not None


@pytest.mark.parametrize("case", ["wrong key", "garbage certificate", "missing key",
                                  "key as certificate"])
def test_unusable_tls_files_are_a_startup_error(tmp_path, case):
    files = make_tls_files(tmp_path)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    certificate, key = {
        "wrong key": (files.certificate, files.other_key),
        "garbage certificate": (garbage, files.key),
        "missing key": (files.certificate, tmp_path / "missing.pem"),
        "key as certificate": (files.key, files.key),
    }[case]
    with pytest.raises(StartupError, match=f"TLS certificate {certificate} / key {key} unusable"):
        tls_options(str(certificate), str(key))


# -- per-address backlog and port 0 ---------------------------------------------------

def test_an_address_backlog_overrides_the_server_one(tmp_path, monkeypatch):
    server, reactor, _ = make_server(tmp_path, monkeypatch, listen_backlog=77, web_port=6082,
                                     protocols={"gt06": (ListenAddress("tcp", 6023, backlog=5),),
                                                "osmand": (ListenAddress("http", 6055),)})
    server.listen()
    tcp = {port: backlog for port, _, backlog, _ in reactor.tcpServers}
    assert tcp == {6023: 5, 6055: 77, 6082: 77}


class BindingReactor(Reactor):
    """Port 0 gets the next "free" number, as the kernel would pick one."""

    def __init__(self):
        super().__init__()
        self.next_free = 40_000

    def _bound(self, port):
        if port == 0:
            self.next_free += 1
            return self.next_free
        return port

    def listenTCP(self, port, factory, backlog=50, interface=""):
        return super().listenTCP(self._bound(port), factory, backlog, interface)

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        return super().listenUDP(self._bound(port), protocol, interface, maxPacketSize)


def test_port_zero_reports_the_bound_ports(tmp_path, monkeypatch):
    """port_of, web_port_number and bound_ports give the numbers bound, not the zeros."""
    Recorder().install(monkeypatch)
    reactor = BindingReactor()
    protocols = {"gt06": (ListenAddress("tcp", 0), ListenAddress("udp", 0),
                          ListenAddress("tcp", 6100)),
                 "osmand": (ListenAddress("http", 0),)}
    server = TrackerServer(Config(protocols=protocols, web_port=0), reactor,
                           store=open_store(f"sqlite:///{tmp_path / 'tracker.db'}"))
    with capturedLogs() as events:
        server.listen()
    assert server.port_of("gt06") == 40_001 and server.port_of("gt06", "udp") == 40_002
    assert server.port_of("osmand", "http") == 40_003
    assert server.web_port_number() == 40_004
    assert server.bound_ports() == [("web", 40_004), ("gt06/tcp", 40_001), ("gt06/udp", 40_002),
                                    ("gt06/tcp", 6100), ("osmand/http", 40_003)]
    logged = [formatEvent(e) for e in events]
    assert "gt06 listening on tcp:40001" in logged and "osmand listening on http:40003" in logged
    assert any(line.startswith("web and API on port 40004") for line in logged)


def test_a_second_address_of_one_transport_is_stopped_too(tmp_path, monkeypatch):
    server, reactor, _ = make_server(tmp_path, monkeypatch, protocols={
        "gt06": (ListenAddress("tcp", 6023), ListenAddress("tcp", 6024))})
    server.listen()
    ports = [port for _, _, port in server.listening] + [server.web_port]
    assert server.port_of("gt06") == 6023 and len(ports) == 3
    stopped = []
    for port in ports:
        monkeypatch.setattr(port, "stopListening", lambda port=port: stopped.append(port))
    for component in (server.commands, server.rules, server.directory, server.writer):
        monkeypatch.setattr(component, "stop", lambda: None, raising=False)
    server.stop()
    assert stopped == ports


def test_web_port_number_before_listening_is_an_error(tmp_path, monkeypatch):
    server, _, _ = make_server(tmp_path, monkeypatch)
    with pytest.raises(RuntimeError, match="not listening"):
        server.web_port_number()
    assert server.bound_ports() == []
