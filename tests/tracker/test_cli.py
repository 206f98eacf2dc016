"""The `tracker` command: admin subcommands on a real SQLite database, replay, help."""

from __future__ import annotations

import pytest

from tracker import cli


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "tracker.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n')
    return str(path)


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("serve", "migrate", "device", "user", "simulate", "replay"):
        assert command in out


def test_migrate_then_devices_add_and_list(capsys, config_file):
    assert run(capsys, "--config", config_file, "migrate")[0] == 0
    code, out, _ = run(capsys, "--config", config_file, "device", "add",
                       "--unique-id", "359710049095095", "--name", "Van 1")
    assert code == 0 and "359710049095095" in out
    code, out, _ = run(capsys, "--config", config_file, "device", "list")
    assert "359710049095095\tVan 1\tlast update never" in out


def test_config_may_follow_the_command(capsys, config_file, tmp_path):
    run(capsys, "device", "add", "--config", config_file, "--unique-id", "42", "--name", "x")
    code, out, _ = run(capsys, "device", "list", "--config", config_file)
    assert code == 0 and "42\tx" in out
    assert (tmp_path / "t.db").exists() and not (tmp_path / "tracker.db").exists()


def test_duplicate_device_is_an_error_not_a_traceback(capsys, config_file):
    run(capsys, "--config", config_file, "device", "add", "--unique-id", "1", "--name", "a")
    code, _, err = run(capsys, "--config", config_file, "device", "add", "--unique-id", "1", "--name", "b")
    assert code == 1 and err.startswith("tracker:")


def test_user_add(capsys, config_file):
    code, out, _ = run(capsys, "--config", config_file, "user", "add", "--email", "a@b.c",
                       "--password", "pw", "--admin")
    assert code == 0 and "administrator" in out and "a@b.c" in out


def test_unknown_devices_listing_is_empty_at_first(capsys, config_file):
    code, out, _ = run(capsys, "--config", config_file, "device", "unknown")
    assert code == 0 and out == ""


def test_bad_config_is_reported(capsys, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[devices]\nunknown = "sometimes"\n')
    code, _, err = run(capsys, "--config", str(path), "migrate")
    assert code == 2 and "devices.unknown" in err


def test_replay_prints_records_of_a_hex_capture(capsys, tmp_path):
    import datetime as dt

    from protocols import gt06
    fix_time = dt.datetime(2026, 5, 1, 8, 30, tzinfo=dt.UTC)
    capture = tmp_path / "capture.hex"
    capture.write_text(gt06.device_login("359710049095095", 1).hex() + "\n"
                       + gt06.device_location(2, fix_time, 48.85, 2.35, 50.0, 180.0).hex() + "\n")
    code, out, _ = run(capsys, "replay", "--protocol", "gt06", str(capture))
    assert code == 0
    import json
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert record["uniqueId"] == "359710049095095"
    assert record["latitude"] == pytest.approx(48.85, abs=1e-5)


def test_replay_of_an_unknown_protocol_fails_clearly(capsys, tmp_path):
    capture = tmp_path / "c.hex"
    capture.write_text("00\n")
    code, _, err = run(capsys, "replay", "--protocol", "nosuch", str(capture))
    assert code == 2 and "unknown protocol" in err


def test_replay_skips_bad_frames_and_says_so(capsys, tmp_path):
    from protocols import gt06
    capture = tmp_path / "capture.hex"
    login = gt06.device_login("359710049095095", 1)
    damaged = login[:-4] + bytes([login[-4] ^ 0xFF]) + login[-3:]
    capture.write_text(damaged.hex() + "\n" + login.hex() + "\n")
    code, out, err = run(capsys, "replay", "--protocol", "gt06", str(capture))
    assert code == 1 and "frame 1:" in err and out == ""


def test_replay_of_a_text_capture_reads_the_stream(capsys, tmp_path):
    capture = tmp_path / "capture.txt"
    capture.write_text("imei:864035052942928,,241214083746,100%,F,123746.000,A,1012.63368,N,"
                       "06757.59559,W,0.00,340.61;\n")
    code, out, _ = run(capsys, "replay", "--protocol", "gps103", str(capture))
    import json
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and record["longitude"] == pytest.approx(-67.9599265)
