"""Configuration of limits and transport security: [web], [server] and [devices] keys,
TLS paths (both or neither, readable at load) and ssl: device listen addresses."""

from __future__ import annotations

import pytest

from tracker.config import ConfigError, ListenAddress, load


def write(tmp_path, text: str):
    path = tmp_path / "tracker.toml"
    path.write_text(text)
    return path


@pytest.fixture
def pem(tmp_path):
    """Two readable files standing in for a certificate and a key (load only checks that)."""
    certificate = tmp_path / "cert.pem"
    key = tmp_path / "key.pem"
    certificate.write_text("certificate")
    key.write_text("key")
    return str(certificate), str(key)


def test_defaults():
    config = load(None, environ={})
    assert config.web_max_connections == 1_000
    assert config.web_header_timeout_s == 10.0
    assert (config.web_tls_certificate, config.web_tls_key) == ("", "")
    assert config.web_tls is False
    assert config.web_behind_proxy is False
    assert config.web_secure_cookies is False
    assert config.first_frame_timeout_s == 30.0
    assert config.listen_backlog == 1_024
    assert config.http_max_connections == 10_000
    assert config.http_header_timeout_s == 10.0
    assert (config.device_tls_certificate, config.device_tls_key) == ("", "")
    assert config.refused_cache_s == 60.0
    assert config.unknown_rate_per_source == 5.0
    assert config.unknown_rate_global == 50.0
    assert config.unknown_max_rows == 10_000


def test_every_new_key_is_read(tmp_path, pem):
    certificate, key = pem
    config = load(write(tmp_path, f"""
[web]
max_connections = 200
header_timeout = 4.5
tls_certificate = "{certificate}"
tls_key = "{key}"
behind_proxy = true
[server]
first_frame_timeout = 12
listen_backlog = 4096
http_max_connections = 300
http_header_timeout = 3
tls_certificate = "{certificate}"
tls_key = "{key}"
[devices]
refused_cache = 90
unknown_rate_per_source = 0.5
unknown_rate_global = 20
unknown_max_rows = 500
"""), environ={})
    assert config.web_max_connections == 200
    assert config.web_header_timeout_s == 4.5
    assert (config.web_tls_certificate, config.web_tls_key) == (certificate, key)
    assert config.web_tls is True
    assert config.web_behind_proxy is True
    assert config.web_secure_cookies is True
    assert config.first_frame_timeout_s == 12.0
    assert config.listen_backlog == 4096
    assert config.http_max_connections == 300
    assert config.http_header_timeout_s == 3.0
    assert (config.device_tls_certificate, config.device_tls_key) == (certificate, key)
    assert config.refused_cache_s == 90.0
    assert config.unknown_rate_per_source == 0.5
    assert config.unknown_rate_global == 20.0
    assert config.unknown_max_rows == 500
    assert isinstance(config.web_max_connections, int)
    assert isinstance(config.web_header_timeout_s, float)


@pytest.mark.parametrize("web, expected", [
    ("", False),
    ("behind_proxy = true\n", True),
    ("TLS", True),
    ("behind_proxy = true\nsecure_cookies = false\n", False),   # explicit value wins
    ("TLS\nsecure_cookies = false\n", False),
    ("secure_cookies = true\n", True),
])
def test_secure_cookies_default_follows_tls_and_proxy(tmp_path, pem, web, expected):
    tls = f'tls_certificate = "{pem[0]}"\ntls_key = "{pem[1]}"\n'
    config = load(write(tmp_path, "[web]\n" + web.replace("TLS", tls)), environ={})
    assert config.web_secure_cookies is expected


@pytest.mark.parametrize("table", ["web", "server"])
@pytest.mark.parametrize("present", ["tls_certificate", "tls_key"])
def test_tls_paths_come_both_or_neither(tmp_path, pem, table, present):
    path = pem[0] if present == "tls_certificate" else pem[1]
    with pytest.raises(ConfigError, match=rf"{table}.tls_certificate and {table}.tls_key "
                                          "must be given together"):
        load(write(tmp_path, f'[{table}]\n{present} = "{path}"\n'), environ={})


@pytest.mark.parametrize("table", ["web", "server"])
@pytest.mark.parametrize("missing", ["tls_certificate", "tls_key"])
def test_tls_files_must_exist_at_load(tmp_path, pem, table, missing):
    paths = {"tls_certificate": pem[0], "tls_key": pem[1]}
    paths[missing] = str(tmp_path / "nope.pem")
    text = f"[{table}]\n" + "".join(f'{k} = "{v}"\n' for k, v in paths.items())
    with pytest.raises(ConfigError, match=rf"{table}.{missing} '.*nope.pem' cannot be read"):
        load(write(tmp_path, text), environ={})


def test_tls_path_that_is_a_directory_is_refused(tmp_path, pem):
    with pytest.raises(ConfigError, match="web.tls_key .* cannot be read"):
        load(write(tmp_path, f'[web]\ntls_certificate = "{pem[0]}"\ntls_key = "{tmp_path}"\n'),
             environ={})


@pytest.mark.parametrize("text, message", [
    ('[web]\nsecure_cookies = "yes"\n', "web.secure_cookies must be true or false"),
    ('[web]\nbehind_proxy = 1\n', "web.behind_proxy must be true or false"),
    ('[web]\ntls_certificate = 5\ntls_key = 6\n', "web.tls_certificate must be a path string"),
    ('[web]\nmax_connections = 0\n', "web.max_connections must be positive"),
    ('[web]\nmax_connections = 10.5\n', "web.max_connections must be a whole number"),
    ('[web]\nmax_connections = true\n', "web.max_connections must be a number"),
    ('[web]\nheader_timeout = -1\n', "web.header_timeout must be positive"),
    ('[web]\nheader_timeout = "soon"\n', "web.header_timeout must be a number"),
    ('[web]\nheader_timeout = inf\n', "web.header_timeout must be positive and finite"),
    ('[web]\nheader_timeout = nan\n', "web.header_timeout must be positive"),
    ('[server]\nfirst_frame_timeout = 0\n', "server.first_frame_timeout must be positive"),
    ('[server]\nlisten_backlog = 0\n', "server.listen_backlog must be positive"),
    ('[server]\nlisten_backlog = 100000\n', "server.listen_backlog must be at most 65535"),
    ('[server]\nlisten_backlog = [1]\n', "server.listen_backlog must be a number"),
    ('[server]\nhttp_max_connections = -5\n', "server.http_max_connections must be positive"),
    ('[server]\nhttp_header_timeout = 0\n', "server.http_header_timeout must be positive"),
    ('[devices]\nrefused_cache = 0\n', "devices.refused_cache must be positive"),
    ('[devices]\nunknown_rate_per_source = "fast"\n',
     "devices.unknown_rate_per_source must be a number"),
    ('[devices]\nunknown_rate_global = -1\n', "devices.unknown_rate_global must be positive"),
    ('[devices]\nunknown_max_rows = 1.5\n', "devices.unknown_max_rows must be a whole number"),
    ('[devices]\nunknown_max_rows = 0\n', "devices.unknown_max_rows must be positive"),
])
def test_bad_values_are_rejected_with_a_message(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, text), environ={})


def test_whole_floats_are_accepted_for_integer_keys(tmp_path):
    config = load(write(tmp_path, "[web]\nmax_connections = 20.0\n"), environ={})
    assert config.web_max_connections == 20 and isinstance(config.web_max_connections, int)


# -- ssl: device listeners ---------------------------------------------------------

def test_ssl_addresses_parse_and_round_trip():
    assert ListenAddress.parse("ssl:5023") == ListenAddress("ssl", 5023)
    address = ListenAddress.parse("ssl:5023:interface=127.0.0.1")
    assert address == ListenAddress("ssl", 5023, "127.0.0.1")
    assert str(address) == "ssl:5023:interface=127.0.0.1"


def test_ssl_listener_with_the_server_certificate(tmp_path, pem):
    config = load(write(tmp_path, f"""
[server]
tls_certificate = "{pem[0]}"
tls_key = "{pem[1]}"
[protocols]
gt06 = ["tcp:5023", "ssl:5024:interface=127.0.0.1", "udp:5023"]
watch = ["ssl:5093"]
"""), environ={})
    assert config.protocols["gt06"] == (ListenAddress("tcp", 5023),
                                        ListenAddress("ssl", 5024, "127.0.0.1"),
                                        ListenAddress("udp", 5023))
    assert config.protocols["watch"] == (ListenAddress("ssl", 5093),)


def test_ssl_listener_without_a_certificate_is_refused(tmp_path, pem):
    with pytest.raises(ConfigError, match=r"protocols.gt06: ssl:5024 needs \[server\] "
                                          "tls_certificate and tls_key"):
        load(write(tmp_path, '[protocols]\ngt06 = ["ssl:5024"]\n'), environ={})
    # the web certificate is not the device one
    with pytest.raises(ConfigError, match="needs"):
        load(write(tmp_path, f'[web]\ntls_certificate = "{pem[0]}"\ntls_key = "{pem[1]}"\n'
                             '[protocols]\ngt06 = ["ssl:5024"]\n'), environ={})


def test_ssl_listener_from_the_environment_is_checked_too(tmp_path, pem):
    with pytest.raises(ConfigError, match="needs"):
        load(None, environ={"TRACKER_PROTOCOLS_GT06": "ssl:5024"})
    path = write(tmp_path, f'[server]\ntls_certificate = "{pem[0]}"\ntls_key = "{pem[1]}"\n')
    config = load(path, environ={"TRACKER_PROTOCOLS_GT06": "ssl:5024"})
    assert config.protocols["gt06"] == (ListenAddress("ssl", 5024),)


def test_ssl_is_refused_for_a_protocol_without_a_stream_transport(tmp_path, pem):
    """osmand is carried in HTTP requests only: a raw TLS stream makes no sense for it."""
    with pytest.raises(ConfigError, match="protocols.osmand: ssl:5055 needs a stream "
                                          "protocol; osmand is carried over http only"):
        load(write(tmp_path, f'[server]\ntls_certificate = "{pem[0]}"\ntls_key = "{pem[1]}"\n'
                             '[protocols]\nosmand = ["ssl:5055"]\n'), environ={})
