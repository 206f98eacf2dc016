"""TLS on the real server: HTTPS on the web port (with a Secure session cookie) and a
GT06 device on an ``ssl:`` port, with a CA and certificate made for the test."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.parse
import urllib.request

import pytest

from protocols import CODECS
from protocols.devices import gt06 as gt06_device
from tests.serverproc import ServerProcess
from tests.tlscerts import make_tls_files
from tracker.storage import open_store

EMAIL, PASSWORD = "fleet@example.com", "correct horse battery"
IMEI = "860000000000042"

pytestmark = pytest.mark.slow


@pytest.fixture
def tls(tmp_path):
    return make_tls_files(tmp_path)


@pytest.fixture
def server(tmp_path, tls):
    database_url = f"sqlite:///{tmp_path / 'tracker.db'}"
    proc = ServerProcess(tmp_path, database_url)
    others = "\n".join(f"{name} = []" for name in sorted(CODECS) if name != "gt06")
    proc.config_path.write_text(f"""
[database]
url = {json.dumps(database_url)}
[web]
port = {proc.web_port}
interface = "127.0.0.1"
tls_certificate = {json.dumps(str(tls.certificate))}
tls_key = {json.dumps(str(tls.key))}
[server]
tls_certificate = {json.dumps(str(tls.certificate))}
tls_key = {json.dumps(str(tls.key))}
[protocols]
gt06 = ["ssl:{proc.device_port}:interface=127.0.0.1"]
{others}
""")
    proc.cli("user", "add", "--email", EMAIL, "--password", PASSWORD)
    store = open_store(database_url)
    store.add_device(IMEI, "tls unit")
    store.close()
    proc.start()
    yield proc
    proc.stop()


def client_context(tls) -> ssl.SSLContext:
    """A client context that trusts only the test CA (and checks the host name)."""
    return ssl.create_default_context(cafile=str(tls.ca))


def test_https_api_and_a_secure_session_cookie(server, tls):
    context = client_context(tls)
    with urllib.request.urlopen(f"https://localhost:{server.web_port}/api/server",
                                context=context, timeout=10) as response:
        assert response.status == 200
        assert "version" in json.loads(response.read())

    connection = http.client.HTTPSConnection("127.0.0.1", server.web_port, context=context,
                                             timeout=10)
    body = urllib.parse.urlencode({"email": EMAIL, "password": PASSWORD})
    connection.request("POST", "/api/session", body=body,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    response = connection.getresponse()
    response.read()
    connection.close()
    assert response.status == 200
    (cookie,) = response.headers.get_all("Set-Cookie")
    assert cookie.startswith("JSESSIONID=")
    assert "; Secure" in cookie and "; HttpOnly" in cookie


def test_the_web_port_speaks_no_plain_http(server):
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        with urllib.request.urlopen(f"http://127.0.0.1:{server.web_port}/api/server",
                                    timeout=10) as response:
            response.read()


def test_a_gt06_device_logs_in_over_tls(server, tls):
    context = client_context(tls)
    with socket.create_connection(("127.0.0.1", server.device_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as device:
            device.sendall(gt06_device.device_login(IMEI, 1))
            assert gt06_device.parse_ack(device.recv(64))[1] == 1
            assert device.version() in ("TLSv1.2", "TLSv1.3")


def test_plain_gt06_on_the_ssl_port_gets_no_ack(server):
    with socket.create_connection(("127.0.0.1", server.device_port), timeout=10) as device:
        device.sendall(gt06_device.device_login(IMEI, 1))
        try:
            reply = device.recv(64)
        except ConnectionResetError:
            reply = b""
    assert not reply.startswith(b"\x78\x78"), "a cleartext login was answered"
    assert server.alive()
