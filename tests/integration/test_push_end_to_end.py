"""Push end to end: a simulated device's SOS reaches the subscribed user's phones.

The real server runs with FCM (through firebase-admin) and Huawei Push Kit pointed
at local fake gateways (real HTTP on loopback that check auth and request shape as
the services do).  A user registers an FCM and a Huawei token over the API; a GT06
device sends one report with an SOS; each fake gateway receives exactly one
well-formed push for that user's token, and the delivery log shows both as sent.
"""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.push.fake_fcm import FakeFcm
from tests.push.fake_huawei import FakeHuawei, internal_error
from tests.serverproc import ServerProcess, wait_for

pytestmark = pytest.mark.slow

EMAIL, PASSWORD = "parent@example.com", "correct horse battery"
IMEI = "860000000000009"


PROJECT, ACCOUNT = "tracker-e2e", "push@tracker-e2e.iam.gserviceaccount.com"


def fake_fcm_and_credentials(tmp_path):
    """A fake FCM trusting a new service-account key, and that account's JSON file."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    fake = FakeFcm(PROJECT, ACCOUNT, public)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": PROJECT, "private_key_id": "k1",
        "private_key": private, "client_email": ACCOUNT, "client_id": "1",
        "token_uri": fake.token_uri}))
    return fake, path


def test_an_sos_reaches_the_fake_fcm_and_huawei_gateways_exactly_once(tmp_path, database_url):
    fcm, credentials = fake_fcm_and_credentials(tmp_path)
    with fcm, FakeHuawei() as huawei:
        push_config = (
            f'[push]\npublic_url = "https://fleet.example.com"\n'
            f'[push.fcm]\ncredentials = {json.dumps(str(credentials))}\nbase_url = "{fcm.url}"\n'
            f'[push.huawei]\napp_id = "{huawei.app_id}"\nclient_secret = "{huawei.client_secret}"\n'
            f'base_url = "{huawei.url}"\nauth_url = "{huawei.url}"\n')
        server = ServerProcess(tmp_path, database_url, extra_config=push_config)
        server.cli("user", "add", "--email", EMAIL, "--password", PASSWORD)
        server.cli("device", "add", "--unique-id", IMEI, "--name", "Lily's watch")
        try:
            server.start()
            for channel, token in (("fcm", "fcm-registration-token-1"), ("huawei", "hw-push-token-1")):
                status, _ = server.api("/api/notifications/tokens", EMAIL, PASSWORD,
                                       {"channel": channel, "platform": "android", "token": token})
                assert status == 200
            route = tmp_path / "sos.route"
            route.write_text("13.405 52.52 0\n")
            result = server.simulate("--devices", "1", "--first-imei", IMEI, "--interval", "1",
                                     "--alarm-every", "1", "--heartbeat-every", "0", "--route", str(route))
            assert result.returncode == 0, result.stdout + result.stderr

            assert wait_for(lambda: fcm.sends and huawei.sends)
            time.sleep(2)                                     # nothing more arrives
            (fcm_push,) = fcm.sends
            (huawei_push,) = huawei.sends
            message = fcm_push.json["message"]
            assert message["token"] == "fcm-registration-token-1"
            assert message["notification"]["title"] == "Lily's watch: SOS alarm"
            assert message["data"]["alarm"] == "sos" and message["android"]["priority"] == "high"
            body = huawei_push.json
            assert body["message"]["token"] == ["hw-push-token-1"]
            assert body["message"]["android"]["notification"]["title"] == "Lily's watch: SOS alarm"
            assert body["message"]["android"]["urgency"] == "HIGH"

            deliveries = server.api("/api/notifications/deliveries", EMAIL, PASSWORD)
            assert sorted((d["channel"], d["status"]) for d in deliveries) == [
                ("fcm", "sent"), ("huawei", "sent")]
            assert "fcm-registration-token-1" not in server.log()   # tokens are secrets
            assert "Traceback" not in server.log()
        finally:
            server.stop()


def test_a_pending_push_is_sent_after_the_server_is_killed(tmp_path, database_url):
    """Crash with a notification pending: the first attempt fails (the gateway's
    OAuth endpoint answers 500, a retryable error), the server is killed with
    SIGKILL before the retry is due, and the restarted server sends it: exactly
    one push reaches the gateway, and the delivery log keeps both attempts."""
    with FakeHuawei() as huawei:
        huawei.script.append(internal_error())
        push_config = (
            f'[push.huawei]\napp_id = "{huawei.app_id}"\nclient_secret = "{huawei.client_secret}"\n'
            f'base_url = "{huawei.url}"\nauth_url = "{huawei.url}"\n')
        server = ServerProcess(tmp_path, database_url, extra_config=push_config)
        server.cli("user", "add", "--email", EMAIL, "--password", PASSWORD)
        server.cli("device", "add", "--unique-id", IMEI, "--name", "Lily's watch")
        try:
            server.start()
            status, _ = server.api("/api/notifications/tokens", EMAIL, PASSWORD,
                                   {"channel": "huawei", "platform": "android", "token": "hw-token-9"})
            assert status == 200
            route = tmp_path / "sos.route"
            route.write_text("13.405 52.52 0\n")
            result = server.simulate("--devices", "1", "--first-imei", IMEI, "--interval", "1",
                                     "--alarm-every", "1", "--heartbeat-every", "0", "--route", str(route))
            assert result.returncode == 0, result.stdout + result.stderr

            def first_attempt_failed():
                deliveries = server.api("/api/notifications/deliveries", EMAIL, PASSWORD)
                return deliveries and deliveries[0]["attempts"]
            attempts = wait_for(first_attempt_failed)
            server.kill()                       # the retry is due 2.5 to 5 s after the failure
            assert [a["status"] for a in attempts] == ["retry"]
            assert huawei.sends == []

            server.start()
            assert wait_for(lambda: huawei.sends, timeout_s=30)
            time.sleep(2)                                     # nothing more arrives
            (push,) = huawei.sends
            assert push.json["message"]["token"] == ["hw-token-9"]
            (delivery,) = server.api("/api/notifications/deliveries", EMAIL, PASSWORD)
            assert delivery["status"] == "sent"
            assert [a["status"] for a in delivery["attempts"]] == ["retry", "sent"]
        finally:
            server.stop()
