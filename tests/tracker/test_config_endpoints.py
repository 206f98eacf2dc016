"""Configuration: listen addresses as Twisted endpoint descriptions, port 0, and
unknown tables and keys refused at load with the known ones named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tracker.config import KEYS, ConfigError, ListenAddress, load

README = Path(__file__).resolve().parents[2] / "README.md"


def write(tmp_path, text: str):
    path = tmp_path / "tracker.toml"
    path.write_text(text)
    return path


# -- endpoint descriptions -----------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("tcp:5023", ListenAddress("tcp", 5023)),
    ("tcp:port=5023", ListenAddress("tcp", 5023)),
    ("tcp:port=5023:interface=10.0.0.1", ListenAddress("tcp", 5023, "10.0.0.1")),
    ("tcp:5023:interface=10.0.0.1", ListenAddress("tcp", 5023, "10.0.0.1")),   # the old form
    ("tcp:5023:10.0.0.1", ListenAddress("tcp", 5023, "10.0.0.1")),   # positional, as Twisted
    (r"tcp:5023:interface=\:\:1", ListenAddress("tcp", 5023, "::1")),
    ("tcp:5023:backlog=4096", ListenAddress("tcp", 5023, backlog=4096)),
    ("tcp:0", ListenAddress("tcp", 0)),
    (" udp:5023 ", ListenAddress("udp", 5023)),
    ("udp:port=5023:interface=127.0.0.1", ListenAddress("udp", 5023, "127.0.0.1")),
    ("ssl:5024", ListenAddress("ssl", 5024)),
    ("ssl:port=5024:interface=127.0.0.1:backlog=10", ListenAddress("ssl", 5024, "127.0.0.1", 10)),
    ("http:5055", ListenAddress("http", 5055)),
    ("http:port=0:interface=127.0.0.1", ListenAddress("http", 0, "127.0.0.1")),
])
def test_endpoint_descriptions_are_accepted(text, expected):
    address = ListenAddress.parse(text)
    assert address == expected
    assert ListenAddress.parse(str(address)) == address     # str() is a valid description


def test_str_keeps_the_short_form_and_escapes_colons():
    assert str(ListenAddress.parse("tcp:port=5023:interface=10.0.0.1")) == \
        "tcp:5023:interface=10.0.0.1"
    assert str(ListenAddress("tcp", 5023, "::1", 7)) == r"tcp:5023:interface=\:\:1:backlog=7"


@pytest.mark.parametrize("text, message", [
    ("sctp:5023", "expected tcp:PORT, ssl:PORT, udp:PORT or http:PORT"),
    ("unix:/run/tracker.sock", "expected tcp:PORT"),
    ("5023", "expected tcp:PORT"),
    ("tcp:", "port and backlog must be whole numbers"),
    ("tcp:fast", "port and backlog must be whole numbers"),
    ("tcp:5023:backlog=many", "port and backlog must be whole numbers"),
    ("tcp:65536", r"port out of range \(0 to 65535\)"),
    ("tcp:-1", "port out of range"),
    ("tcp:5023:backlog=0", "backlog must be from 1 to 65535"),
    ("tcp:5023:mode=666", "tcp takes the options port, interface, backlog"),
    ("tcp:5023:port=5024", "tcp takes the options port, interface, backlog"),
    ("udp:5023:backlog=10", "udp takes the options port, interface$"),
    ("http:5055:ssl=yes", "http takes the options port, interface, backlog"),
    ("ssl:5024:privateKey=key.pem", r"ssl takes the options port, interface, backlog; its "
                                    r"certificate is \[server\] tls_certificate and tls_key"),
])
def test_bad_endpoint_descriptions_are_rejected_clearly(text, message):
    with pytest.raises(ConfigError, match=message) as caught:
        ListenAddress.parse(text)
    assert repr(text) in str(caught.value)      # the message quotes what was written


def test_endpoint_descriptions_in_the_file_and_the_environment(tmp_path):
    path = write(tmp_path, '[protocols]\ngt06 = ["tcp:port=0:interface=127.0.0.1:backlog=64", '
                           '"udp:port=0"]\n')
    config = load(path, environ={"TRACKER_PROTOCOLS_OSMAND": "http:port=0:interface=127.0.0.1"})
    assert config.protocols["gt06"] == (ListenAddress("tcp", 0, "127.0.0.1", 64),
                                        ListenAddress("udp", 0))
    assert config.protocols["osmand"] == (ListenAddress("http", 0, "127.0.0.1"),)


def test_a_bad_address_names_the_protocol_list_it_is_in(tmp_path):
    with pytest.raises(ConfigError, match="'tcp:5023:interfce=1.2.3.4': tcp takes the options"):
        load(write(tmp_path, '[protocols]\ngt06 = ["tcp:5023:interfce=1.2.3.4"]\n'), environ={})


# -- web port ------------------------------------------------------------------------

def test_web_port_zero_is_any_free_port(tmp_path):
    assert load(write(tmp_path, "[web]\nport = 0\n"), environ={}).web_port == 0
    assert load(None, environ={"TRACKER_WEB_PORT": "0"}).web_port == 0


@pytest.mark.parametrize("value", ["70000", "-1", "true"])
def test_web_port_out_of_range_is_rejected(tmp_path, value):
    with pytest.raises(ConfigError, match="web.port must be"):
        load(write(tmp_path, f"[web]\nport = {value}\n"), environ={})


# -- unknown tables and keys ---------------------------------------------------------

def test_an_unknown_section_is_rejected_naming_the_known_ones(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, "[webb]\nport = 8082\n"), environ={})
    message = str(caught.value)
    assert message.startswith("unknown section [webb] in configuration (did you mean 'web'?)")
    assert "known sections: database, devices, events, protocols, push, server, web" in message


def test_a_top_level_key_is_an_unknown_section(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown section \[port\]"):
        load(write(tmp_path, "port = 8082\n"), environ={})


@pytest.mark.parametrize("section, key, close", [
    ("web", "prot", "port"),
    ("server", "listen_backlg", "listen_backlog"),
    ("devices", "unknwon", "unknown"),
    ("database", "uri", "url"),
    ("server", "colour", None),
])
def test_an_unknown_key_is_rejected_naming_the_known_ones(tmp_path, section, key, close):
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, f"[{section}]\n{key} = 1\n"), environ={})
    message = str(caught.value)
    assert message.startswith(f"unknown key {section}.{key} in configuration")
    assert (f"(did you mean {close!r}?)" in message) is (close is not None)
    assert f"known keys of [{section}]: {', '.join(sorted(KEYS[section]))}" in message


def test_unknown_push_keys_are_rejected_at_load(tmp_path):
    """Not only when the server starts: `tracker migrate` and `serve` refuse it alike."""
    with pytest.raises(ConfigError, match=r"unknown key push.pol in configuration \(did you mean "
                                          r"'poll'\?\); known keys of \[push\]: "
                                          r"apns, coalesce_window, email, fcm"):
        load(write(tmp_path, "[push]\npol = 1\n"), environ={})
    config = load(write(tmp_path, '[push]\npoll = 2\n[push.webhook]\nurl = "http://x"\n'),
                  environ={})
    assert config.push["poll"] == 2


def test_unknown_events_settings_are_still_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"\[events\]: unknown setting\(s\) speed_limit"):
        load(write(tmp_path, "[events]\nspeed_limit = 40\n"), environ={})


def test_the_readme_configuration_example_loads(tmp_path):
    """Every key the README documents is known (uncommented where it is commented out)."""
    text = README.read_text()
    example = re.search(r"## Configuration.*?```toml\n(.*?)```", text, re.S).group(1)
    lines = []
    for line in example.splitlines():
        # "# key = value  # comment" lines document optional keys: load them too
        match = re.match(r"# ([a-z_]+) = (\S+)", line)
        if match and match.group(2) not in ("...",):
            key, value = match.groups()
            lines.append(f"{key} = {value}")
        else:
            lines.append(line)
    toml = "\n".join(lines)
    certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.write_text("c")
    key.write_text("k")
    toml = re.sub(r'"/etc/letsencrypt/live/fleet.example.com/fullchain.pem"', f'"{certificate}"', toml)
    toml = re.sub(r'"/etc/letsencrypt/live/fleet.example.com/privkey.pem"', f'"{key}"', toml)
    config = load(write(tmp_path, toml), environ={})
    assert config.protocols["gt06"] == (ListenAddress("tcp", 5023), ListenAddress("udp", 5023))
    assert config.web_tls and config.event_defaults["speed_limit_kn"] == 43.2
