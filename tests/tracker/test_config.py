"""Configuration: defaults, TOML, environment overrides, clear errors."""

import pytest

from tracker.config import ConfigError, ListenAddress, load


def test_defaults_work_without_a_file():
    config = load(None, environ={})
    assert config.database_url == "sqlite:///tracker.db"
    assert config.web_port == 8082
    assert config.unknown_devices == "refuse"
    assert config.protocols["gt06"] == (ListenAddress("tcp", 5023), ListenAddress("udp", 5023))


def test_toml_keys_the_tools_rely_on(tmp_path):
    path = tmp_path / "tracker.toml"
    path.write_text('[database]\nurl = "postgresql+psycopg2://u@h/db"\n[web]\nport = 9000\n'
                    '[protocols]\ngt06 = ["tcp:6000"]\n[devices]\nunknown = "register"\n')
    config = load(path, environ={})
    assert config.database_url == "postgresql+psycopg2://u@h/db"
    assert config.web_port == 9000
    assert config.protocols["gt06"] == (ListenAddress("tcp", 6000),)
    assert config.unknown_devices == "register"


def test_environment_overrides_the_file(tmp_path):
    path = tmp_path / "tracker.toml"
    path.write_text('[web]\nport = 9000\n')
    config = load(path, environ={"TRACKER_WEB_PORT": "9100", "TRACKER_DATABASE_URL": "sqlite:///x.db",
                                 "TRACKER_PROTOCOLS_GT06": "tcp:7000,udp:7001",
                                 "TRACKER_DEVICES_UNKNOWN": "register"})
    assert config.web_port == 9100
    assert config.database_url == "sqlite:///x.db"
    assert config.protocols["gt06"] == (ListenAddress("tcp", 7000), ListenAddress("udp", 7001))
    assert config.unknown_devices == "register"


def test_an_empty_protocol_list_disables_it():
    config = load(None, environ={"TRACKER_PROTOCOLS_GT06": ""})
    assert config.protocols["gt06"] == ()


@pytest.mark.parametrize("text, message", [
    ('[devices]\nunknown = "maybe"\n', "devices.unknown"),
    ('[protocols]\nnosuch = ["tcp:1"]\n', "unknown protocol 'nosuch'"),
    ('[protocols]\ngt06 = "tcp:5023"\n', "must be a list"),
    ('[protocols]\ngt06 = ["sctp:5023"]\n', "expected tcp:PORT, ssl:PORT, udp:PORT or http:PORT"),
    ('[protocols]\ngt06 = ["tcp:99999"]\n', "out of range"),
    ('[web]\nport = "eighty"\n', "web.port must be an integer"),
    ('[web\n', "cannot read config"),
    ('[server]\nidle_timeout = "soon"\n', "server.idle_timeout must be a number"),
    ('[server]\nmax_connections = 0\n', "must be positive"),
])
def test_bad_values_are_rejected_with_a_message(tmp_path, text, message):
    path = tmp_path / "tracker.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(path, environ={})


def test_listen_address_with_interface_round_trips():
    address = ListenAddress.parse("tcp:5023:interface=127.0.0.1")
    assert address == ListenAddress("tcp", 5023, "127.0.0.1")
    assert str(address) == "tcp:5023:interface=127.0.0.1"
