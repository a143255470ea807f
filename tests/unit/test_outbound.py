"""The outbound policy: where a strategy's webhook may make POM send requests (core/outbound.py),
checked when the strategy is saved through the API (a 422 at the handler's url)."""
from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient

from api import auth, deps
from api.app import create_app
from pom_actors.config import Settings
from pom_actors.core.outbound import OutboundPolicy
from pom_actors.core.strategy import StrategyError, parse_strategy


@pytest.mark.parametrize("url, kind", [
    ("http://127.0.0.1:8080/api/v1/jobs/1/start", "loopback"),      # the server calling its own API
    ("http://localhost/x", "loopback"),
    ("http://api.localhost/x", "loopback"),
    ("http://[::1]:8080/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),         # cloud metadata
    ("http://[fe80::1]/", "link-local"),
    ("http://10.0.0.5/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://0.0.0.0:8080/", "private"),
    ("http://224.0.0.1/", "multicast"),
    ("http://100.64.0.1/", "reserved"),                                 # carrier-grade NAT
])
def test_inside_addresses_are_refused(url, kind):
    fault = OutboundPolicy().url_fault(url)
    assert fault is not None and f"a {kind} address" in fault


@pytest.mark.parametrize("url", ["https://hooks.example.com/x", "http://93.184.216.34/x",
                                 "https://{attr.host}/x", "http://[2606:4700::1111]/"])
def test_public_addresses_names_and_templates_pass_at_save_time(url):
    assert OutboundPolicy().url_fault(url) is None


def test_an_operator_allows_networks():
    policy = OutboundPolicy.from_setting("127.0.0.1, 10.20.0.0/16")
    assert policy.url_fault("http://127.0.0.1:9/x") is None and policy.url_fault("http://10.20.3.4/") is None
    assert policy.url_fault("http://10.21.0.1/") is not None and policy.url_fault("http://127.0.0.2/") is not None
    with pytest.raises(ValueError, match="POM_OUTBOUND_ALLOW: '10.0.0.0/33'"):
        OutboundPolicy.from_setting("10.0.0.0/33")


def test_at_send_time_a_name_is_judged_by_what_it_resolves_to():
    async def resolve(host):
        return {"inside.example": ["10.0.0.7"], "outside.example": ["93.184.216.34"]}[host]

    async def go(url):
        return await OutboundPolicy().resolve_fault(url, resolve)

    assert "inside.example: 10.0.0.7 is a private address" in asyncio.run(go("http://inside.example/x"))
    assert asyncio.run(go("http://outside.example/x")) is None


def _hook_strategy(url: str) -> dict:
    return {"name": "hooked", "initial": "h", "handlers": {
        "h": {"type": "custom", "addresses": ["email"], "url": url, "results": {"default": "done"}}}}


def test_a_strategy_naming_an_inside_url_is_refused_at_its_path():
    with pytest.raises(StrategyError) as info:
        parse_strategy(_hook_strategy("http://169.254.169.254/x"), outbound=OutboundPolicy())
    assert [e["path"] for e in info.value.errors] == ["handlers.h.url"]
    parse_strategy(_hook_strategy("http://169.254.169.254/x"))          # no policy: seeds, `pom strategy validate`


class Untouchable:
    def __getattr__(self, name):
        raise AssertionError(f"the strategy should have been refused before .{name}")


@pytest.mark.parametrize("allow, status", [("", 422), ("127.0.0.0/8", 201)])
def test_the_gateway_applies_the_operators_policy_when_a_strategy_is_saved(allow, status):
    app = create_app(Settings(database_url="postgresql://unused@127.0.0.1:1/none", outbound_allow=allow))

    class Conn:
        def execute(self, *args):
            if status == 422:
                raise AssertionError("refused before the database")
            return self

        def fetchone(self):
            return (1,)

    app.dependency_overrides[deps.db] = Conn
    r = TestClient(app, headers=auth.for_tests(app)).post("/api/v1/strategies",
                                                          json=_hook_strategy("http://127.0.0.1:8080/api/v1/jobs"))
    assert r.status_code == status, r.text
    if status == 422:
        assert r.json()["error"] == "invalid_strategy"
        assert r.json()["errors"] == [{"path": "handlers.h.url", "message":
                                       "127.0.0.1 is a loopback address (allow it with POM_OUTBOUND_ALLOW)"}]


@pytest.mark.parametrize("env, allow, refused", [
    ({"POM_SMS_URL": "http://127.0.0.1:9/sms"}, "", ["POM_SMS_URL 'http://127.0.0.1:9/sms' is refused: "
                                                     "127.0.0.1 is a loopback address (allow it with POM_OUTBOUND_ALLOW)"]),
    ({"POM_SMTP_HOST": "169.254.169.254"}, "", ["POM_SMTP_HOST '169.254.169.254' is refused: 169.254.169.254 "
                                                "is a link-local address (allow it with POM_OUTBOUND_ALLOW)"]),
    ({"POM_SMTP_HOST": "localhost", "POM_SMS_URL": "ftp://sms.example.com/"}, "",
     ["POM_SMS_URL 'ftp://sms.example.com/' is refused: the url must start with http:// or https://",
      "POM_SMTP_HOST 'localhost' is refused: 127.0.0.1 is a loopback address (allow it with POM_OUTBOUND_ALLOW)"]),
    ({"POM_SMS_URL": "http://127.0.0.1:9/sms", "POM_SMTP_HOST": "10.1.2.3"}, "127.0.0.1,10.0.0.0/8", []),
    ({"POM_SMS_URL": "https://sms.example.com/send", "POM_SMTP_HOST": "mail.example.com"}, "", []),
    ({}, "", []),                                             # unset: the defaults are not the operator's
])
def test_the_operators_relays_meet_the_outbound_policy(env, allow, refused):
    assert OutboundPolicy.from_setting(allow).relay_faults(env) == refused


def test_a_gateway_with_a_refused_relay_does_not_start():
    from pom_actors.media.gateway import gateway_config

    with pytest.raises(ValueError, match="POM_SMTP_HOST '192.168.1.5' is refused: 192.168.1.5 is a private"):
        gateway_config(Settings(), "gw-a", {"POM_SMTP_HOST": "192.168.1.5"})
    assert gateway_config(Settings(), "gw-a", {"POM_SMTP_HOST": "192.168.1.5",
                                               "POM_OUTBOUND_ALLOW": "192.168.0.0/16"}).smtp_host == "192.168.1.5"


def test_pom_run_refuses_a_relay_the_policy_refuses_before_starting_anything(monkeypatch, capsys, pom_run):
    monkeypatch.setenv("POM_SMS_URL", "http://10.0.0.7/sms")
    monkeypatch.delenv("POM_OUTBOUND_ALLOW", raising=False)
    assert pom_run(["run"]) == 2
    assert capsys.readouterr().err.strip() == ("pom: POM_SMS_URL 'http://10.0.0.7/sms' is refused: 10.0.0.7 is a "
                                               "private address (allow it with POM_OUTBOUND_ALLOW)")
