"""The `tracker` command's structure: one handler per subcommand, help on every
level, usage and configuration errors exit 2, `python -m tracker`."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from tracker import cli
from tracker.cli.server import listening_line


def leaves(parser: argparse.ArgumentParser, path=()):
    """(command path, parser) of every runnable subcommand."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield path, parser
    for group in groups:
        for name, sub in group.choices.items():
            yield from leaves(sub, (*path, name))


EXPECTED = {
    ("serve",), ("migrate",), ("device", "add"), ("device", "list"), ("device", "set"),
    ("device", "unknown"), ("user", "add"), ("command", "send"), ("command", "list"),
    ("group", "add"), ("group", "list"), ("group", "delete"), ("geofence", "add"),
    ("geofence", "list"), ("geofence", "show"), ("geofence", "delete"), ("geofence", "link"),
    ("geofence", "unlink"), ("calendar", "add"), ("calendar", "list"), ("calendar", "delete"),
    ("rule", "add"), ("rule", "list"), ("rule", "show"), ("rule", "delete"), ("rule", "enable"),
    ("rule", "disable"), ("organisation", "list"), ("organisation", "timezone"),
    ("notification", "token-add"), ("notification", "tokens"), ("notification", "preferences"),
    ("quarantine", "list"), ("quarantine", "show"), ("quarantine", "purge"), ("simulate",),
    ("replay",),
}


def test_every_subcommand_has_its_own_handler():
    found = dict(leaves(cli.build_parser()))
    assert set(found) == EXPECTED
    handlers = {path: parser.get_default("handler") for path, parser in found.items()}
    assert all(callable(handler) for handler in handlers.values())
    # one function per command (enable and disable, link and unlink included)
    assert len({getattr(h, "__wrapped__", h) for h in handlers.values()}) == len(handlers)


def help_of(capsys, *argv):
    with pytest.raises(SystemExit) as exited:
        cli.main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_lists_every_command(capsys):
    out = help_of(capsys)
    for command in sorted({path[0] for path in EXPECTED}):
        assert f"    {command} " in out or f"    {command}\n" in out, command


@pytest.mark.parametrize("group", sorted({path[0] for path in EXPECTED if len(path) == 2}))
def test_each_group_help_lists_its_actions(capsys, group):
    out = help_of(capsys, group)
    for path in EXPECTED:
        if path[0] == group:
            assert f"    {path[1]} " in out or f"    {path[1]}\n" in out, path


def test_a_subcommand_help_shows_its_options(capsys):
    out = help_of(capsys, "device", "set")
    for option in ("--unique-id", "--name", "--group", "--no-group", "--speed-limit",
                   "--attribute", "--config"):
        assert option in out


@pytest.mark.parametrize("argv", [[], ["nosuch"], ["device"], ["device", "nosuch"],
                                  ["device", "add", "--name", "x"],
                                  ["geofence", "link", "1"],
                                  ["group", "delete", "one"]])
def test_usage_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert "usage: tracker" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["serve"], ["migrate"], ["device", "list"]])
def test_an_unknown_config_key_stops_every_command_with_status_2(capsys, tmp_path, command):
    """Checked at load: `serve` refuses before opening a database or a port."""
    path = tmp_path / "tracker.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n[web]\nprot = 8082\n')
    assert cli.main(["--config", str(path), *command]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tracker: unknown key web.prot in configuration (did you mean 'port'?)")
    assert not (tmp_path / "t.db").exists()


def test_a_bad_listen_address_stops_serve_with_status_2(capsys, tmp_path):
    path = tmp_path / "tracker.toml"
    path.write_text('[protocols]\ngt06 = ["tcp:5023:interfce=127.0.0.1"]\n')
    assert cli.main(["serve", "--config", str(path)]) == 2
    assert "tcp takes the options port, interface, backlog" in capsys.readouterr().err


def test_a_store_command_end_to_end(capsys, tmp_path):
    path = tmp_path / "tracker.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n')
    base = ["--config", str(path)]
    assert cli.main([*base, "migrate"]) == 0
    assert capsys.readouterr().out == "database at the latest schema (sqlite)\n"
    assert cli.main([*base, "command", "send", "--unique-id", "404", "--type", "engineStop"]) == 1
    assert capsys.readouterr().err == "tracker: no device with unique id 404\n"
    assert cli.main([*base, "device", "add", "--unique-id", "404", "--name", "Van"]) == 0
    assert cli.main([*base, "command", "send", "--unique-id", "404", "--type", "engineStop",
                     "--attribute", "x"]) == 2
    assert "attribute 'x' is not KEY=VALUE" in capsys.readouterr().err
    assert cli.main([*base, "command", "send", "--unique-id", "404", "--type", "engineStop"]) == 0
    assert cli.main([*base, "command", "list", "--unique-id", "404"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("1\tdevice 1\tengineStop\t")
    assert cli.main([*base, "quarantine", "list", "--json"]) == 0
    assert capsys.readouterr().out == "[]\n"


def test_listening_line_format():
    assert listening_line([("web", 8082), ("gt06/tcp", 5023), ("gt06/udp", 5023)]) == \
        "listening: web=8082 gt06/tcp=5023 gt06/udp=5023"


def test_python_dash_m_tracker_is_the_command():
    result = subprocess.run([sys.executable, "-m", "tracker", "--help"], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0 and "usage: tracker" in result.stdout
    assert "quarantine" in result.stdout
