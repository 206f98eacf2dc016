"""The `tracker` command: admin subcommands on a real SQLite database, replay, help."""

from __future__ import annotations

import json

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

    from protocols.devices import gt06 as gt06_device
    fix_time = dt.datetime(2026, 5, 1, 8, 30, tzinfo=dt.UTC)
    capture = tmp_path / "capture.hex"
    capture.write_text(gt06_device.device_login("359710049095095", 1).hex() + "\n"
                       + gt06_device.device_location(2, fix_time, 48.85, 2.35, 50.0, 180.0).hex() + "\n")
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
    from protocols.devices import gt06 as gt06_device
    capture = tmp_path / "capture.hex"
    login = gt06_device.device_login("359710049095095", 1)
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


# -- configuration commands ------------------------------------------------------------

def admin(capsys, config_file, *argv):
    return run(capsys, "--config", config_file, *argv)


@pytest.fixture
def store(config_file, tmp_path, capsys):
    """The CLI's database, migrated, with one device; for checking what the CLI stored."""
    from tracker.storage import SqlStore

    assert admin(capsys, config_file, "device", "add", "--unique-id", "111", "--name", "Van")[0] == 0
    return SqlStore(f"sqlite:///{tmp_path / 't.db'}")


def test_help_lists_the_configuration_commands(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("group", "geofence", "calendar", "rule", "organisation"):
        assert command in out
    with pytest.raises(SystemExit):
        cli.main(["geofence", "--help"])
    out = capsys.readouterr().out
    for action in ("add", "list", "show", "delete", "link", "unlink"):
        assert action in out


def test_group_add_list_delete(capsys, config_file, store):
    code, out, _ = admin(capsys, config_file, "group", "add", "--name", "Vans",
                         "--attribute", "speedLimit=43.2", "--attribute", "note=blue")
    assert code == 0 and out.startswith("added group 1: Vans")
    assert store.groups(None)[0].attributes == {"speedLimit": 43.2, "note": "blue"}
    code, out, _ = admin(capsys, config_file, "group", "list")
    assert out == '1\tVans\t{"note":"blue","speedLimit":43.2}\n'
    assert admin(capsys, config_file, "group", "delete", "1")[0] == 0
    assert store.groups(None) == []


def test_group_errors_exit_2_without_a_traceback(capsys, config_file, store):
    code, _, err = admin(capsys, config_file, "group", "add", "--name", "x",
                         "--attribute", "speedLimit=fast")
    assert code == 2 and err.startswith("tracker: attributes.speedLimit:")
    code, _, err = admin(capsys, config_file, "group", "delete", "9")
    assert code == 2 and "group 9 not found" in err and "Traceback" not in err
    code, _, err = admin(capsys, config_file, "group", "add", "--name", "x", "--attribute", "novalue")
    assert code == 2 and "not KEY=VALUE" in err


def test_device_set_name_group_and_speed_limit_in_kmh(capsys, config_file, store):
    admin(capsys, config_file, "group", "add", "--name", "Vans")
    code, out, _ = admin(capsys, config_file, "device", "set", "--unique-id", "111",
                         "--name", "Van 1", "--group", "1", "--speed-limit", "90",
                         "--attribute", "hysteresisMeters=30")
    assert code == 0 and "Van 1" in out and "group 1" in out
    device = store.device_by_unique_id("111")
    assert (device.name, device.group_id) == ("Van 1", 1)
    assert device.attributes["speedLimit"] == pytest.approx(90 / 1.852)
    assert device.attributes["hysteresisMeters"] == 30
    # settings merge; KEY= removes one; --no-group leaves the group
    admin(capsys, config_file, "device", "set", "--unique-id", "111", "--no-group",
          "--attribute", "hysteresisMeters=")
    device = store.device_by_unique_id("111")
    assert device.group_id is None and set(device.attributes) == {"speedLimit"}
    assert device.name == "Van 1"


@pytest.mark.parametrize("argv, message", [
    (["--unique-id", "999", "--name", "x"], "no device with unique id 999"),
    (["--unique-id", "111", "--group", "5"], "group 5 not found"),
    (["--unique-id", "111", "--speed-limit", "-5"], "--speed-limit: must be a number >= 0"),
    (["--unique-id", "111", "--attribute", "hysteresisFixes=0"], "attributes.hysteresisFixes"),
    (["--unique-id", "111", "--name", " "], "--name: must not be empty"),
])
def test_device_set_errors(capsys, config_file, store, argv, message):
    code, _, err = admin(capsys, config_file, "device", "set", *argv)
    assert code == 2 and message in err
    assert store.device_by_unique_id("111").name == "Van"


def test_geofence_add_list_show_delete(capsys, config_file, store, tmp_path):
    code, out, _ = admin(capsys, config_file, "geofence", "add", "--name", "Depot",
                         "--area", "CIRCLE (52.5 13.4, 200)", "--description", "gate",
                         "--speed-limit", "18.52", "--dwell-minutes", "15",
                         "--attribute", "hysteresisMeters=20")
    assert code == 0 and out == "added geofence 1: Depot CIRCLE (52.5 13.4, 200)\n"
    assert store.geofence(None, 1).attributes == {"hysteresisMeters": 20, "speedLimit": 10.0,
                                                  "dwellMinutes": 15.0}
    admin(capsys, config_file, "geofence", "add", "--name", "Square",
          "--wkt", "POLYGON ((13 52, 13.1 52, 13.1 52.1, 13 52))")
    feature = tmp_path / "road.json"
    feature.write_text('{"type": "Feature", "geometry": {"type": "LineString", "coordinates": '
                       '[[13, 52], [13.2, 52.1]]}, "properties": {"width_m": 50}}')
    admin(capsys, config_file, "geofence", "add", "--name", "Road", "--geojson", str(feature))
    code, out, _ = admin(capsys, config_file, "geofence", "list")
    assert out.splitlines() == ["1\tDepot\tCIRCLE (52.5 13.4, 200)",
                                "2\tSquare\tPOLYGON ((52 13, 52 13.1, 52.1 13.1, 52 13))",
                                "3\tRoad\tLINESTRING (52 13, 52.1 13.2)"]
    code, out, _ = admin(capsys, config_file, "geofence", "show", "3")
    shown = json.loads(out)
    assert shown["wkt"] == "LINESTRING (13 52, 13.2 52.1)"
    assert shown["geojson"]["properties"] == {"width_m": 50.0}
    assert admin(capsys, config_file, "geofence", "delete", "2")[0] == 0
    assert [g.id for g in store.geofences(None)] == [1, 3]


@pytest.mark.parametrize("argv, message", [
    (["add", "--name", "x", "--area", "POLYGON ((0 0, 1 1, 0 1, 1 0))"], "Self-intersection"),
    (["add", "--name", "x", "--area", "CIRCLE (95 13.4, 200)"], "latitude 95.0 out of range"),
    (["add", "--name", "x", "--area", "CIRCLE (52 13, 100)", "--dwell-minutes", "0"],
     "attributes.dwellMinutes"),
    (["add", "--name", "x", "--area", "CIRCLE (52 13, 100)", "--calendar", "4"],
     "calendar 4 not found"),
    (["add", "--name", "x", "--geojson", "/nonexistent.json"], "--geojson: cannot read"),
    (["show", "7"], "geofence 7 not found"),
    (["delete", "7"], "geofence 7 not found"),
    (["link", "7", "--group", "1"], "geofence 7 not found"),
])
def test_geofence_errors_exit_2(capsys, config_file, store, argv, message):
    code, out, err = admin(capsys, config_file, "geofence", *argv)
    assert code == 2 and message in err and out == ""
    assert store.geofences(None) == []


def test_geofence_link_and_unlink(capsys, config_file, store):
    admin(capsys, config_file, "geofence", "add", "--name", "Depot", "--area", "CIRCLE (52 13, 100)")
    admin(capsys, config_file, "group", "add", "--name", "Vans")
    device = store.device_by_unique_id("111")
    assert admin(capsys, config_file, "geofence", "link", "1", "--unique-id", "111")[0] == 0
    assert admin(capsys, config_file, "geofence", "link", "1", "--group", "1")[0] == 0
    assert [g.id for g in store.geofences(None, device_id=device.id)] == [1]
    assert [g.id for g in store.geofences(None, group_id=1)] == [1]
    assert admin(capsys, config_file, "geofence", "unlink", "1", "--unique-id", "111")[0] == 0
    assert store.geofences(None, device_id=device.id) == []
    code, _, err = admin(capsys, config_file, "geofence", "unlink", "1", "--unique-id", "111")
    assert code == 2 and "not linked" in err
    code, _, err = admin(capsys, config_file, "geofence", "link", "1", "--unique-id", "404")
    assert code == 2 and "no device with unique id 404" in err


def test_calendar_add_list_delete(capsys, config_file, store, tmp_path):
    schedule = tmp_path / "office.json"
    schedule.write_text('{"intervals": [{"days": ["FRI", "mon"], "from": "08:00", "to": "17:00"}]}')
    code, out, _ = admin(capsys, config_file, "calendar", "add", "--name", "Office",
                         "--file", str(schedule))
    assert code == 0 and out == "added calendar 1: Office\n"
    assert store.calendars(None)[0].data == {
        "intervals": [{"days": ["mon", "fri"], "from": "08:00", "to": "17:00"}]}
    code, out, _ = admin(capsys, config_file, "calendar", "list")
    assert out.startswith("1\tOffice\t{")
    assert admin(capsys, config_file, "calendar", "delete", "1")[0] == 0
    assert store.calendars(None) == []


def test_calendar_errors(capsys, config_file, store, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"intervals": [{"from": "08:00", "to": "08:00"}]}')
    code, _, err = admin(capsys, config_file, "calendar", "add", "--name", "x", "--file", str(bad))
    assert code == 2 and err.startswith("tracker: data.intervals[0]:")
    bad.write_text("{not json")
    code, _, err = admin(capsys, config_file, "calendar", "add", "--name", "x", "--file", str(bad))
    assert code == 2 and "is not JSON" in err
    assert store.calendars(None) == []


def test_rule_add_list_show_enable_disable_delete(capsys, config_file, store, tmp_path):
    definition = tmp_path / "rule.json"
    definition.write_text('{"when": {"attribute": "temperature1", "operator": ">", "value": 8}}')
    code, out, _ = admin(capsys, config_file, "rule", "add", "--name", "Fridge",
                         "--file", str(definition))
    assert code == 0 and out == "added rule 1: Fridge\n"
    code, out, _ = admin(capsys, config_file, "rule", "add", "--name", "SOS", "--disabled",
                         "--json", '{"when": {"event": "alarm", "value": "sos"}}')
    assert code == 0 and "(disabled)" in out
    code, out, _ = admin(capsys, config_file, "rule", "list")
    lines = out.splitlines()
    assert lines[0].startswith("1\tFridge\tenabled\t{") and lines[1].startswith("2\tSOS\tdisabled\t")
    code, out, _ = admin(capsys, config_file, "rule", "show", "1")
    shown = json.loads(out)
    assert shown == {"id": 1, "name": "Fridge", "enabled": True,
                     "when": {"attribute": "temperature1", "operator": ">", "value": 8, "for": 0},
                     "devices": [], "groups": [], "zone": None, "calendar": None,
                     "then": {"type": "sensorThreshold"}}
    # what show prints is what add takes
    definition.write_text(out)
    assert admin(capsys, config_file, "rule", "add", "--name", "Copy", "--file", str(definition))[0] == 0
    assert store.rule(None, 3).definition == store.rule(None, 1).definition
    assert admin(capsys, config_file, "rule", "enable", "2")[0] == 0
    assert store.rule(None, 2).enabled is True
    assert admin(capsys, config_file, "rule", "disable", "1")[0] == 0
    assert store.rule(None, 1).enabled is False
    assert store.rule(None, 1).definition["when"]["attribute"] == "temperature1"
    assert admin(capsys, config_file, "rule", "delete", "3")[0] == 0
    assert [r.id for r in store.rules(None)] == [1, 2]


@pytest.mark.parametrize("argv, message", [
    (["add", "--name", "x", "--json", '{"when": {"attribute": "t", "operator": "~", "value": 1}}'],
     "when.operator: must be one of"),
    (["add", "--name", "x", "--json", '{"when": {"event": "alarm"}, "zone": 4}'],
     "zone: geofence 4 does not exist"),
    (["add", "--name", "x", "--json", '{"when": {"event": "alarm"}, "devices": [99]}'],
     "devices[0]: device 99 does not exist"),
    (["add", "--name", "x", "--json", "{oops"], "--json: not JSON"),
    (["add", "--name", "x", "--json", "[1]"], "must be a JSON object"),
    (["show", "5"], "rule 5 not found"),
    (["enable", "5"], "rule 5 not found"),
    (["delete", "5"], "rule 5 not found"),
])
def test_rule_errors_exit_2(capsys, config_file, store, argv, message):
    code, _, err = admin(capsys, config_file, "rule", *argv)
    assert code == 2 and message in err
    assert store.rules(None) == []


def test_deleting_a_calendar_a_rule_uses_is_refused(capsys, config_file, store, tmp_path):
    schedule = tmp_path / "c.json"
    schedule.write_text('{"intervals": [{"from": "08:00", "to": "17:00"}]}')
    admin(capsys, config_file, "calendar", "add", "--name", "Office", "--file", str(schedule))
    admin(capsys, config_file, "rule", "add", "--name", "R", "--json",
          '{"when": {"event": "alarm"}, "calendar": 1}')
    code, _, err = admin(capsys, config_file, "calendar", "delete", "1")
    assert code == 2 and "used by rule 1" in err
    assert len(store.calendars(None)) == 1


def test_organisation_timezone(capsys, config_file, store):
    code, out, _ = admin(capsys, config_file, "organisation", "timezone", "Europe/Berlin")
    assert code == 0 and "Europe/Berlin" in out
    assert store.organisations()[0].timezone == "Europe/Berlin"
    code, out, _ = admin(capsys, config_file, "organisation", "list")
    assert out.startswith("1\t") and out.rstrip().endswith("\tEurope/Berlin")
    code, _, err = admin(capsys, config_file, "organisation", "timezone", "Mars/Olympus")
    assert code == 2 and err.startswith("tracker: NAME: not an IANA time zone")
    code, _, err = admin(capsys, config_file, "organisation", "timezone", "--id", "9", "UTC")
    assert code == 2 and "organisation 9 not found" in err
    assert store.organisations()[0].timezone == "Europe/Berlin"


def test_notification_tokens_and_preferences_from_the_cli(tmp_path, capsys):
    config = tmp_path / "tracker.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "n.db"}"\n')
    base = ["--config", str(config)]
    assert cli.main([*base, "user", "add", "--email", "a@example.com", "--password", "pw12345678"]) == 0
    assert cli.main([*base, "notification", "token-add", "--email", "a@example.com",
                     "--channel", "huawei", "--token", "0123456789abcdef"]) == 0
    assert cli.main([*base, "notification", "tokens", "--email", "a@example.com"]) == 0
    out = capsys.readouterr().out
    assert "huawei" in out and "0123456789abcdef" not in out      # masked
    assert cli.main([*base, "user", "add", "--email", "b@example.com", "--password", "pw12345678"]) == 0
    assert cli.main([*base, "notification", "token-add", "--email", "b@example.com",
                     "--channel", "huawei", "--token", "0123456789abcdef"]) == 2
    assert "another user holds this push target" in capsys.readouterr().err
    assert cli.main([*base, "notification", "preferences", "--email", "a@example.com",
                     "--json", '{"types": ["alarm"], "language": "zh"}']) == 0
    assert cli.main([*base, "notification", "preferences", "--email", "a@example.com",
                     "--json", '{"quietHours": {"from": "7"}}']) == 2
    assert cli.main([*base, "notification", "tokens", "--email", "nobody@example.com"]) == 2
