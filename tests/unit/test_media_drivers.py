"""The channel drivers against real servers on loopback: aiosmtpd for SMTP, a threaded
stdlib HTTP server for the SMS gateway and webhooks. The fixtures are shared with
test_gateway.py."""
import asyncio
import base64
import ipaddress
import json
import socket
import ssl
import threading
import time
from datetime import datetime, timezone
from email import message_from_bytes
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from pom_actors.core.clock import ManualClock
from pom_actors.core.codes import SYSTEM_CODES
from pom_actors.core.orders import Order
from pom_actors.media.sms_http import SmsDriver
from pom_actors.media.smtp import SmtpDriver
from pom_actors.core.outbound import OutboundPolicy, system_resolver
from pom_actors.media.webhook import WebhookDriver

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """An aiosmtpd handler that keeps what it receives and refuses listed recipients."""

    def __init__(self):
        self.messages: list = []
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              message_from_bytes(envelope.content, policy=email_policy)))
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self, credentials: tuple[str, str] | None = None):
        self.mailbox, self.port, self.logins = Mailbox(), free_port(), []
        options = {}
        if credentials:
            def authenticator(server, session, envelope, mechanism, auth_data):
                self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
                ok = (auth_data.login.decode(), auth_data.password.decode()) == credentials
                return AuthResult(success=ok, handled=False)
            options = {"authenticator": authenticator, "auth_require_tls": False}
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port,
                                     **options)


@pytest.fixture
def smtp_server():
    server = SmtpServer()
    server.controller.start()
    yield server
    server.controller.stop()


class HttpServer:
    """Answers each path from a script of (status, body, delay_s) steps, the last one
    repeating, and records every request."""

    def __init__(self):
        self.script: dict[str, list[tuple[int, object, float]]] = {}
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = urlsplit(self.path)
                owner.requests.append({"method": self.command, "path": parts.path,
                                       "query": parse_qs(parts.query),
                                       "headers": dict(self.headers), "body": body})
                steps = owner.script.get(parts.path, [(200, "", 0.0)])
                status, payload, delay = steps.pop(0) if len(steps) > 1 else steps[0]
                time.sleep(delay)
                data = (json.dumps(payload) if isinstance(payload, dict) else payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout tests)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def json(self, index: int = -1) -> dict:
        return json.loads(self.requests[index]["body"])


@pytest.fixture
def http_server():
    server = HttpServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def email(attempt_id: str, to: str = "ann@example.com", **kw) -> Order:
    return Order(attempt_id, 1, 0, 1, "email", to, "mgr", message=kw.pop("message", "Hello Ann"),
                 subject=kw.pop("subject", "Your appointment"),
                 sender=kw.pop("sender", "clinic@example.org"), **kw)


def sms(attempt_id: str = "5.1", **kw) -> Order:
    return Order(attempt_id, 1, 0, 1, "sms", "+14155550100", "mgr", message="Your code is 42",
                 sender="POM", **kw)


def hook(url: str, attempt_id: str = "9.1", **kw) -> Order:
    return Order(attempt_id, 3, 1, 2, "custom", "ann-42", "mgr", message="renewal", url=url, **kw)


# --- SMTP ---------------------------------------------------------------------------------

def test_smtp_batch_is_delivered_with_subject_body_from_and_to(smtp_server):
    driver = SmtpDriver(ManualClock(T0), "127.0.0.1", smtp_server.port)
    outcomes = asyncio.run(driver.deliver([email("1.1"), email("2.1", to="bob@example.com",
                                                               subject="Reminder")]))
    assert [(o.attempt_id, o.code, o.at) for o in outcomes] == \
        [("1.1", "delivered", T0), ("2.1", "delivered", T0)]
    (sender1, rcpt1, msg1), (_, rcpt2, msg2) = smtp_server.mailbox.messages
    assert sender1 == "clinic@example.org" and rcpt1 == ["ann@example.com"]
    assert (msg1["Subject"], msg1["From"], msg1["To"]) == \
        ("Your appointment", "clinic@example.org", "ann@example.com")
    assert msg1.get_content().strip() == "Hello Ann" and msg1["X-POM-Attempt"] == "1.1"
    assert rcpt2 == ["bob@example.com"] and msg2["Subject"] == "Reminder"
    assert outcomes[0].details["message_id"] == msg1["Message-ID"]


def test_smtp_refused_recipients_map_to_bounced_or_network_refusal(smtp_server):
    smtp_server.mailbox.refuse = {"gone@example.com": "550 5.1.1 no such user",
                                  "later@example.com": "450 4.2.1 try again later"}
    driver = SmtpDriver(ManualClock(T0), "127.0.0.1", smtp_server.port)
    outcomes = asyncio.run(driver.deliver([email("1.1", to="gone@example.com"),
                                           email("2.1", to="later@example.com"),
                                           email("3.1")]))
    assert [o.code for o in outcomes] == ["bounced", "network_refusal", "delivered"]
    assert outcomes[0].details["smtp_code"] == 550 and outcomes[1].details["smtp_code"] == 450
    assert len(smtp_server.mailbox.messages) == 1


def test_smtp_login_is_used_when_configured():
    server = SmtpServer(credentials=("pom", "s3cret"))
    server.controller.start()
    try:
        good = SmtpDriver(ManualClock(T0), "127.0.0.1", server.port, user="pom",
                          password="s3cret")
        assert [o.code for o in asyncio.run(good.deliver([email("1.1")]))] == ["delivered"]
        bad = SmtpDriver(ManualClock(T0), "127.0.0.1", server.port, user="pom",
                         password="wrong")
        failed = asyncio.run(bad.deliver([email("2.1"), email("3.1")]))
        assert [o.code for o in failed] == ["network_refusal"] * 2
        assert "SMTPAuthenticationError" in failed[0].details["error"]
        # smtplib tries each mechanism the server offers before giving up
        assert server.logins[0] == ("pom", "s3cret")
        assert set(server.logins[1:]) == {("pom", "wrong")}
        assert len(server.mailbox.messages) == 1
    finally:
        server.controller.stop()


def self_signed_cert(directory) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, written as PEM files."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(datetime(2020, 1, 1)).not_valid_after(datetime(2100, 1, 1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def test_smtp_starttls_verifies_the_server_certificate(tmp_path):
    cert_file, key_file = self_signed_cert(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, tls_context=tls,
                            require_starttls=True)
    controller.start()
    try:
        trusted = SmtpDriver(ManualClock(T0), "127.0.0.1", port, starttls=True,
                             ca_file=cert_file)
        assert [o.code for o in asyncio.run(trusted.deliver([email("1.1")]))] == ["delivered"]
        untrusted = SmtpDriver(ManualClock(T0), "127.0.0.1", port, starttls=True)
        refused = asyncio.run(untrusted.deliver([email("2.1")]))[0]
        assert refused.code == "network_refusal" and "CERTIFICATE_VERIFY_FAILED" in \
            refused.details["error"]
        plain = SmtpDriver(ManualClock(T0), "127.0.0.1", port)
        assert asyncio.run(plain.deliver([email("3.1")]))[0].code == "network_refusal"
        assert len(mailbox.messages) == 1
    finally:
        controller.stop()


def test_smtp_server_down_fails_every_order_of_the_batch():
    driver = SmtpDriver(ManualClock(T0), "127.0.0.1", free_port(), timeout=2)
    outcomes = asyncio.run(driver.deliver([email("1.1"), email("2.1")]))
    assert [(o.attempt_id, o.code) for o in outcomes] == \
        [("1.1", "network_refusal"), ("2.1", "network_refusal")]
    assert "ConnectionRefusedError" in outcomes[0].details["error"]


# --- SMS over HTTP -------------------------------------------------------------------------

def deliver_sms(order: Order, url: str, **kw):
    async def go():
        driver = SmsDriver(ManualClock(T0), url, backoff_s=0.01, **kw)
        try:
            return await driver.deliver(order)
        finally:
            await driver.close()
    return asyncio.run(go())


def test_sms_posts_the_json_body_with_a_bearer_token(http_server):
    http_server.script["/sms"] = [(202, {"id": "abc"}, 0.0)]
    outcome = deliver_sms(sms(), http_server.url("/sms"), token="tok-1")
    assert (outcome.code, outcome.at, outcome.details["http_status"]) == ("delivered", T0, 202)
    request = http_server.requests[0]
    assert request["method"] == "POST" and request["headers"]["Authorization"] == "Bearer tok-1"
    assert http_server.json() == {"to": "+14155550100", "from": "POM",
                                  "text": "Your code is 42", "reference": "5.1"}


def test_sms_basic_auth(http_server):
    deliver_sms(sms(), http_server.url("/sms"), user="acct", password="pw")
    expected = "Basic " + base64.b64encode(b"acct:pw").decode()
    assert http_server.requests[0]["headers"]["Authorization"] == expected


@pytest.mark.parametrize("status,body,code", [
    (400, {"error": "invalid_number", "detail": "not a mobile number"}, "invalid_number"),
    (400, "Invalid phone number", "invalid_number"),
    (400, {"error": "text too long"}, "sms_failed"),
    (401, {"error": "bad token"}, "sms_failed"),
    (422, {"error": "invalid number"}, "sms_failed"),
])
def test_sms_4xx_is_final_and_mapped(http_server, status, body, code):
    http_server.script["/sms"] = [(status, body, 0.0)]
    outcome = deliver_sms(sms(), http_server.url("/sms"), retries=2)
    assert (outcome.code, outcome.details["http_status"], outcome.details["tries"]) == \
        (code, status, 1)
    assert len(http_server.requests) == 1


def test_sms_5xx_is_retried_then_delivered_or_failed(http_server):
    http_server.script["/ok"] = [(503, "busy", 0.0), (500, "", 0.0), (200, "", 0.0)]
    http_server.script["/down"] = [(502, "bad gateway", 0.0)]
    delivered = deliver_sms(sms("1.1"), http_server.url("/ok"), retries=2)
    failed = deliver_sms(sms("2.1"), http_server.url("/down"), retries=2)
    assert (delivered.code, delivered.details["tries"]) == ("delivered", 3)
    assert (failed.code, failed.details["tries"], failed.details["http_status"]) == \
        ("sms_failed", 3, 502)


def test_sms_timeout_after_retries(http_server):
    http_server.script["/slow"] = [(200, "", 1.0)]
    outcome = deliver_sms(sms(), http_server.url("/slow"), retries=1, timeout=0.2)
    assert (outcome.code, outcome.details["tries"]) == ("timeout", 2)
    assert "http_status" not in outcome.details and len(http_server.requests) == 2


def test_sms_connection_refused_is_sms_failed():
    outcome = deliver_sms(sms(), f"http://127.0.0.1:{free_port()}/sms", retries=1)
    assert outcome.code == "sms_failed" and "ConnectError" in outcome.details["error"]


# --- webhooks ------------------------------------------------------------------------------

LOOPBACK = OutboundPolicy(["127.0.0.0/8"])     # the test servers listen there: allowed, as an operator would


def deliver_hook(order: Order, known=tuple(SYSTEM_CODES), policy=LOOPBACK, resolve=system_resolver):
    async def go():
        driver = WebhookDriver(ManualClock(T0), set(known), backoff_s=0.01, policy=policy, resolve=resolve)
        try:
            return await driver.deliver(order)
        finally:
            await driver.close()
    return asyncio.run(go())


def test_webhook_sends_the_attempt_and_contact_and_maps_a_known_code(http_server):
    http_server.script["/hook"] = [(200, {"code": "busy"}, 0.0)]
    order = hook(http_server.url("/hook"), headers={"X-Api-Key": "k1"},
                 payload={"first_name": "Ann", "balance": 12.5})
    outcome = deliver_hook(order)
    assert (outcome.code, outcome.job_id, outcome.shard, outcome.epoch) == ("busy", 3, 1, 2)
    assert http_server.requests[0]["headers"]["X-Api-Key"] == "k1"
    assert http_server.json() == {"attempt_id": "9.1", "job_id": 3, "address": "ann-42",
                                  "message": "renewal",
                                  "contact": {"first_name": "Ann", "balance": 12.5}}


def test_webhook_get_sends_a_query_string(http_server):
    deliver_hook(hook(http_server.url("/hook"), method="GET", payload={"first_name": "Ann"}))
    request = http_server.requests[0]
    assert request["method"] == "GET"
    assert request["query"]["attempt_id"] == ["9.1"] and request["query"]["first_name"] == ["Ann"]


@pytest.mark.parametrize("status,body,code", [
    (200, "", "delivered"),
    (204, "", "delivered"),
    (200, {"status": "ok"}, "delivered"),
    (404, "not here", "webhook_failed"),
    (409, {"code": "answer_human"}, "answer_human"),  # a code wins over the status
    (200, {"code": "promised_to_pay"}, "promised_to_pay"),  # a configured custom code
])
def test_webhook_answer_mapping(http_server, status, body, code):
    http_server.script["/hook"] = [(status, body, 0.0)]
    outcome = deliver_hook(hook(http_server.url("/hook"), retries=2),
                           known=set(SYSTEM_CODES) | {"promised_to_pay"})
    assert (outcome.code, outcome.details["http_status"], outcome.details["tries"]) == \
        (code, status, 1)


def test_webhook_unknown_code_fails_with_details(http_server):
    http_server.script["/hook"] = [(200, {"code": "made_up"}, 0.0)]
    outcome = deliver_hook(hook(http_server.url("/hook")))
    assert outcome.code == "webhook_failed" and outcome.details["unknown_code"] == "made_up"


def test_webhook_retries_5xx_then_succeeds(http_server):
    http_server.script["/hook"] = [(500, "", 0.0), (503, "", 0.0), (200, {"code": "delivered"},
                                                                      0.0)]
    outcome = deliver_hook(hook(http_server.url("/hook"), retries=3))
    assert (outcome.code, outcome.details["tries"]) == ("delivered", 3)


def test_webhook_5xx_with_a_code_is_an_answer_not_a_retry(http_server):
    http_server.script["/hook"] = [(500, {"code": "no_answer"}, 0.0)]
    outcome = deliver_hook(hook(http_server.url("/hook"), retries=3))
    assert (outcome.code, outcome.details["tries"]) == ("no_answer", 1)


def test_webhook_5xx_after_retries_fails(http_server):
    http_server.script["/hook"] = [(500, "", 0.0)]
    outcome = deliver_hook(hook(http_server.url("/hook"), retries=1))
    assert (outcome.code, outcome.details["tries"], outcome.details["http_status"]) == \
        ("webhook_failed", 2, 500)


def test_webhook_timeout_after_retries(http_server):
    http_server.script["/hook"] = [(200, "", 1.0)]
    outcome = deliver_hook(hook(http_server.url("/hook"), retries=1, timeout=0.2))
    assert (outcome.code, outcome.details["tries"]) == ("timeout", 2)


def test_webhook_connection_refused_is_webhook_failed():
    outcome = deliver_hook(hook(f"http://127.0.0.1:{free_port()}/hook"))
    assert outcome.code == "webhook_failed" and "ConnectError" in outcome.details["error"]


# --- the outbound policy (core/outbound.py) at send time -----------------------------------------------

def test_a_webhook_to_loopback_is_refused_unless_allowed_and_never_sent(http_server):
    http_server.script["/hook"] = [(200, {"code": "busy"}, 0.0)]
    refused = deliver_hook(hook(http_server.url("/hook")), policy=OutboundPolicy())
    assert refused.code == "webhook_failed" and "127.0.0.1 is a loopback address" in refused.details["error"]
    assert http_server.requests == []
    assert deliver_hook(hook(http_server.url("/hook"))).code == "busy"       # allowed by the operator


@pytest.mark.parametrize("addresses", [["10.1.2.3"], ["93.184.216.34", "169.254.169.254"], ["fd00::1"], []])
def test_a_webhook_host_is_judged_by_every_address_it_resolves_to(addresses):
    async def resolve(host):
        assert host == "hooks.example.com"
        return addresses

    outcome = deliver_hook(hook("https://hooks.example.com/x"), policy=OutboundPolicy(), resolve=resolve)
    assert outcome.code == "webhook_failed" and "outbound policy" in outcome.details["error"]
