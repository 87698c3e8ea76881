"""https targets: the certificate is checked for the URL's host, though the connection goes to the checked address."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from outbound import services, transport
from outbound.models import Delivery, DeliveryState

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture
def tls_receiver(tmp_path):
    """An https receiver on loopback with a self-signed certificate for localhost (trusted by nobody)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert), "-days", "1"],
                   check=True, capture_output=True)
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen, cert
    server.shutdown()
    server.server_close()


def test_a_certificate_no_authority_vouches_for_is_refused(org, tls_receiver, django_capture_on_commit_callbacks):
    port, seen, _cert = tls_receiver
    services.endpoint_create(org=org, url=f"https://localhost:{port}/hook", events=["*"])
    with django_capture_on_commit_callbacks(execute=True):
        services.event_send(org_id=org.pk, type="balance.low", data={}, key="tls")
    delivery = Delivery.objects.get()
    attempt = delivery.attempt_log.get()
    assert delivery.state == DeliveryState.PENDING and attempt.status_code is None
    assert "CERTIFICATE_VERIFY_FAILED" in attempt.error or "certificate verify failed" in attempt.error
    assert seen == []


def test_it_checks_the_certificate_for_the_urls_name_while_connecting_to_the_checked_address(
    org, tls_receiver, monkeypatch, django_capture_on_commit_callbacks,
):
    """The receiver's certificate names localhost; the connection goes to 127.0.0.1 (what localhost
    resolved to), and verification still passes: SNI and the hostname check use the URL's name."""
    port, seen, cert = tls_receiver
    monkeypatch.setattr(transport.certifi, "where", lambda: str(cert))  # trust the test's certificate
    services.endpoint_create(org=org, url=f"https://localhost:{port}/hook", events=["*"])
    with django_capture_on_commit_callbacks(execute=True):
        services.event_send(org_id=org.pk, type="balance.low", data={}, key="tls-ok")
    delivery = Delivery.objects.get()
    assert delivery.state == DeliveryState.SUCCEEDED, delivery.attempt_log.get().error
    assert seen == ["/hook"]
