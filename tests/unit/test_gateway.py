import asyncio
import dataclasses
import json
import pickle
from datetime import datetime, timedelta, timezone

import pydantic
import pytest

from pom_actors.config import Settings
from pom_actors.core.clock import ManualClock, ScaledClock, SystemClock
from pom_actors.core.orders import Order, OrderRecord, Outcome, Refusal
from pom_actors.media.gateway import gateway_config, Gateway, GatewayConfig
from pom_actors.core.agents.bridge import ANSWERED
from pom_actors.media.voice_sim import VoiceProfile
from tests.unit.test_media_drivers import email, free_port, hook, http_server, sms, \
    smtp_server  # noqa: F401 (fixtures)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
LOOPBACK = "127.0.0.0/8"      # the test servers listen there: allowed, as an operator would
NO_ANSWER = VoiceProfile(answer_human=0, answer_machine=0, busy=0, no_answer=1,
                         invalid_number=0, fax=0, network_refusal=0)
ALL_BUSY = VoiceProfile(answer_human=0, answer_machine=0, busy=1, no_answer=0,
                        invalid_number=0, fax=0, network_refusal=0,
                        setup_s={"dist": "fixed", "value": 2})


def call(attempt_id: str, epoch: int = 1, reply_to: str = "mgr-1", shard: int = 0,
         ring_timeout: float = 20.0) -> Order:
    return Order(attempt_id, 1, shard, epoch, "call", "+14155550100", reply_to,
                 ring_timeout=ring_timeout)


async def poll_until(gateway: Gateway, reply_to: str, count: int) -> list:
    """Poll until `count` outcomes arrived (bounded: background sends end on their own)."""
    got: list = []
    for _ in range(500):
        got += await gateway.poll(reply_to)
        if len(got) >= count:
            break
        await asyncio.sleep(0.01)
    return got


def test_calls_complete_as_business_time_passes_and_each_outcome_is_polled_once():
    async def go():
        clock = ManualClock(T0)
        gateway = Gateway(GatewayConfig(name="gw-a", voice=NO_ANSWER), clock)
        assert await gateway.submit([call("1.1"), call("2.1", ring_timeout=30.0)]) == []
        assert await gateway.poll("mgr-1") == []
        clock.advance(20)
        first = await gateway.poll("mgr-1")
        assert [(o.attempt_id, o.code, o.at) for o in first] == \
            [("1.1", "no_answer", T0 + timedelta(seconds=20))]
        assert first[0].details == {"ring_s": 20.0, "gateway": "gw-a"}
        clock.advance(10)
        assert [o.attempt_id for o in await gateway.poll("mgr-1")] == ["2.1"]
        assert await gateway.poll("mgr-1") == []
        await gateway.close()
    asyncio.run(go())


def test_refusals_duplicate_stale_epoch_and_unknown_channel():
    async def go():
        gateway = Gateway(GatewayConfig(name="gw-a"), ManualClock(T0))
        assert await gateway.submit([call("1.1", epoch=4)]) == []
        fax = Order("3.1", 1, 0, 4, "fax", "+14155550100", "mgr-1")
        refused = await gateway.submit([call("1.1", epoch=4), call("2.1", epoch=3), fax,
                                        call("4.1", epoch=4)])
        assert [(r.attempt_id, r.reason) for r in refused] == [
            ("3.1", "unknown channel 'fax'"), ("1.1", "duplicate attempt id"),
            ("2.1", "stale epoch 3 < 4")]
        assert await gateway.order_ids() == ["1.1", "4.1"]
        stats = await gateway.stats()
        assert stats["orderbook"]["refused"] == {"duplicate attempt id": 1, "stale epoch": 1}
        assert stats["channels"]["call"] == {"submitted": 2, "in_flight": 2}
        await gateway.close()
    asyncio.run(go())


def test_lookup_tells_pending_completed_and_never_received():
    async def go():
        clock = ManualClock(T0)
        gateway = Gateway(GatewayConfig(name="gw-a", voice=ALL_BUSY), clock)
        await gateway.submit([call("1.1", epoch=2)])
        assert (await gateway.lookup(["1.1", "7.1"])) == {"1.1": OrderRecord("1.1", "pending", 2)}
        clock.advance(2)
        # a lookup sees completions even when the manager has not polled them
        record = (await gateway.lookup(["1.1"]))["1.1"]
        assert (record.state, record.code, record.at) == ("completed", "busy", T0 + timedelta(seconds=2))
        assert [o.attempt_id for o in await gateway.poll("mgr-1")] == ["1.1"]
        await gateway.close()
    asyncio.run(go())


def test_fence_before_lookup_refuses_the_deposed_holders_late_order():
    async def go():
        gateway = Gateway(GatewayConfig(name="gw-a"), ManualClock(T0))
        await gateway.submit([call("1.1", epoch=1)])
        await gateway.fence(1, {0: 2})
        assert "2.1" not in await gateway.lookup(["2.1"])  # unknown: safe to retry ...
        refused = await gateway.submit([call("2.1", epoch=1)])  # ... since it can't land now
        assert [(r.attempt_id, r.reason) for r in refused] == [("2.1", "stale epoch 1 < 2")]
        assert await gateway.submit([call("3.1", epoch=2)]) == []
        await gateway.close()
    asyncio.run(go())


def test_outcomes_are_queued_per_reply_to_and_wait_for_their_manager():
    async def go():
        clock = ManualClock(T0)
        gateway = Gateway(GatewayConfig(name="gw-a", voice=ALL_BUSY), clock)
        await gateway.submit([call(f"{i}.1", reply_to=f"mgr-{i % 2}") for i in range(10)])
        clock.advance(5)
        mine = await gateway.poll("mgr-0", max_items=3)
        mine += await gateway.poll("mgr-0", max_items=3)
        mine += await gateway.poll("mgr-0")
        assert [o.attempt_id for o in mine] == ["0.1", "2.1", "4.1", "6.1", "8.1"]
        assert (await gateway.stats())["queued"] == {"mgr-1": 5}
        assert len(await gateway.poll("mgr-1")) == 5
        await gateway.close()
    asyncio.run(go())


def test_scaled_clock_completes_calls_in_real_time():
    async def go():
        clock = ScaledClock.starting(T0, scale=10_000)
        gateway = Gateway(GatewayConfig(name="gw-a", voice=NO_ANSWER), clock)
        await gateway.submit([call(f"{i}.1", ring_timeout=15.0) for i in range(50)])
        outcomes = await poll_until(gateway, "mgr-1", 50)
        assert len(outcomes) == 50 and {o.code for o in outcomes} == {"no_answer"}
        await gateway.close()
    asyncio.run(go())


def test_instant_mode_takes_100k_orders_through_in_batches():
    async def go():
        clock = ManualClock(T0)
        gateway = Gateway(GatewayConfig(name="gw-a", voice=VoiceProfile(instant=True)), clock)
        orders = [call(f"{i}.1", shard=i % 16) for i in range(100_000)]
        for start in range(0, len(orders), 20_000):
            assert await gateway.submit(orders[start:start + 20_000]) == []
        outcomes = await gateway.poll("mgr-1", max_items=1_000_000)
        assert len(outcomes) == 100_000
        assert len({o.attempt_id for o in outcomes}) == 100_000
        assert all(o.at == T0 for o in outcomes)
        ids = await gateway.order_ids()
        assert len(ids) == len(set(ids)) == 100_000
        assert (await gateway.stats())["pending"] == 0
        await gateway.close()
    asyncio.run(go())


def test_email_sms_and_webhook_run_in_the_background(smtp_server, http_server):  # noqa: F811
    http_server.script["/hook"] = [(200, {"code": "answer_human"}, 0.0)]
    config = GatewayConfig(name="gw-a", smtp_port=smtp_server.port, outbound_allow=LOOPBACK,
                           sms_url=http_server.url("/sms"), sms_token="t")

    async def go():
        gateway = Gateway(config, ManualClock(T0))
        orders = [email("1.1"), email("2.1"), sms("3.1"), hook(http_server.url("/hook"), "4.1")]
        assert await gateway.submit(orders) == []
        outcomes = await poll_until(gateway, "mgr", 4)
        assert {o.attempt_id: o.code for o in outcomes} == {
            "1.1": "delivered", "2.1": "delivered", "3.1": "delivered", "4.1": "answer_human"}
        assert all(o.details["gateway"] == "gw-a" for o in outcomes)
        stats = await gateway.stats()
        assert stats["pending"] == 0
        assert {c: s["submitted"] for c, s in stats["channels"].items()} == \
            {"call": 0, "sms": 1, "email": 2, "custom": 1}
        await gateway.close()
    asyncio.run(go())
    assert len(smtp_server.mailbox.messages) == 2
    (sms_request,) = [r for r in http_server.requests if r["path"] == "/sms"]
    assert sms_request["headers"]["Authorization"] == "Bearer t"
    assert json.loads(sms_request["body"])["reference"] == "3.1"


def test_failing_drivers_yield_failure_outcomes_not_exceptions():
    config = GatewayConfig(name="gw-a", smtp_port=free_port(), http_backoff_s=0.01, outbound_allow=LOOPBACK)

    async def go():
        gateway = Gateway(config, ManualClock(T0))
        orders = [email("1.1"), sms("2.1"), hook(f"http://127.0.0.1:{free_port()}/x", "3.1"),
                  hook("not a url", "4.1")]
        assert await gateway.submit(orders) == []
        outcomes = {o.attempt_id: o for o in await poll_until(gateway, "mgr", 4)}
        assert {k: o.code for k, o in outcomes.items()} == {
            "1.1": "network_refusal", "2.1": "sms_failed", "3.1": "webhook_failed",
            "4.1": "webhook_failed"}
        assert outcomes["2.1"].details["error"] == "no SMS gateway configured (POM_SMS_URL)"
        assert all(o.details["error"] for o in outcomes.values())
        assert {r.state for r in (await gateway.lookup(list(outcomes))).values()} == {"completed"}
        await gateway.close()
    asyncio.run(go())


def test_close_leaves_cut_off_orders_pending_in_the_record(http_server):  # noqa: F811
    http_server.script["/slow"] = [(200, "", 2.0)]

    async def go():
        gateway = Gateway(GatewayConfig(name="gw-a", outbound_allow=LOOPBACK), ManualClock(T0))
        await gateway.submit([hook(http_server.url("/slow"), "1.1", timeout=5.0)])
        for _ in range(200):  # until the request is on the wire
            if http_server.requests:
                break
            await asyncio.sleep(0.01)
        await gateway.close()
        assert (await gateway.lookup(["1.1"]))["1.1"].state == "pending"
    asyncio.run(go())


def test_orders_outcomes_refusals_and_config_survive_pickling():
    """They cross Ray actor calls."""
    order = hook("http://127.0.0.1:9/x", headers={"X-Key": "k"}, payload={"n": 1})
    outcome = Outcome("9.1", "busy", T0, {"setup_s": 1.5}, 3, 1, 2)
    config = GatewayConfig(name="gw-a", voice=ALL_BUSY, custom_codes=["promised_to_pay"])
    for value in (order, outcome, Refusal("9.1", "stale epoch 1 < 2"), config):
        assert pickle.loads(pickle.dumps(value)) == value


def test_config_from_env():
    env = {"POM_SMTP_HOST": "mail.local", "POM_SMTP_PORT": "2525", "POM_SMTP_USER": "u",
           "POM_SMTP_PASSWORD": "p", "POM_SMTP_STARTTLS": "true",
           "POM_SMS_URL": "http://127.0.0.1:9/sms", "POM_SMS_TOKEN": "tok",
           "POM_VOICE_PROFILE": '{"instant": true, "seed": 9}'}
    config = GatewayConfig.from_env("gw-b", env, smtp_port=2626)
    assert (config.smtp_host, config.smtp_port, config.smtp_user, config.smtp_password,
            config.smtp_starttls) == ("mail.local", 2626, "u", "p", True)
    assert (config.sms_url, config.sms_token) == ("http://127.0.0.1:9/sms", "tok")
    assert config.voice.instant and config.voice.seed == 9
    assert GatewayConfig.from_env("gw-c", {}).smtp_port == 25
    with pytest.raises(pydantic.ValidationError):
        GatewayConfig.from_env("gw-d", {"POM_SMTP_PORT": "twenty-five"})


def test_a_servers_own_environment_wins_over_the_cluster_settings():
    settings = Settings(smtp_host="relay.head", smtp_port=2525, sms_url="http://head/sms", sms_token="t-head")
    node_env = {"POM_SMTP_HOST": "relay.node-b", "POM_SMS_TOKEN": "t-node-b"}
    config = gateway_config(settings, "gw-b", node_env)
    assert (config.smtp_host, config.smtp_port) == ("relay.node-b", 2525)
    assert (config.sms_url, config.sms_token) == ("http://head/sms", "t-node-b")
    assert gateway_config(settings, "gw-a", {}).smtp_host == "relay.head"


def test_wall_maps_business_time_back_to_the_wall_clock_it_runs_on():
    clock = ScaledClock(T0, scale=10.0, real_start=1_000.0)
    assert clock.wall(T0) == 1_000.0
    assert clock.wall(T0 + timedelta(seconds=25)) == 1_002.5        # 25 business s: 2.5 real s later
    assert clock.wall(T0 - timedelta(seconds=10)) == 999.0
    assert SystemClock().wall(T0) == T0.timestamp()


def test_answers_waits_for_an_answered_call_and_brings_what_is_queued_with_it():
    human = VoiceProfile(answer_human=1, answer_machine=0, busy=0, no_answer=0, invalid_number=0, fax=0,
                         network_refusal=0, ring_s={"dist": "fixed", "value": 5.0},
                         talk_s={"dist": "fixed", "value": 1.0})

    def bridged(attempt_id: str, reply_to: str = "mgr-1") -> Order:
        return dataclasses.replace(call(attempt_id, reply_to=reply_to), bridge=True)

    async def go():
        clock = ManualClock(T0)
        gateway = Gateway(GatewayConfig(name="gw-a", voice=human), clock)
        await gateway.submit([call("1.1")])                              # no agent: talks, then completes
        clock.advance(2)
        await gateway.submit([bridged("2.1"), bridged("3.1", "mgr-2")])  # answered at 7 s: notices
        clock.advance(4)
        assert await gateway.answers("mgr-1", 0.01) == []              # a completion alone: left queued
        clock.advance(1)
        got = await gateway.answers("mgr-1", 0.01)
        assert [(o.attempt_id, o.code) for o in got] == [("1.1", "answer_human"), ("2.1", ANSWERED)]
        assert await gateway.answers("mgr-1", 0.01) == [] and await gateway.poll("mgr-1") == []
        assert [o.attempt_id for o in await gateway.poll("mgr-2")] == ["3.1"]
        assert await gateway.answers("mgr-2", 0.01) == []              # taken by the poll
        await gateway.close()

        scaled = ScaledClock.starting(T0, scale=1_000)                  # 5 business s: 5 real ms
        gateway = Gateway(GatewayConfig(name="gw-b", voice=human), scaled)
        await gateway.submit([bridged("4.1")])
        got = await gateway.answers("mgr-1", 60.0)                      # falls due while it waits
        assert [(o.attempt_id, o.code) for o in got] == [("4.1", ANSWERED)]
        await gateway.close()
    asyncio.run(go())
