"""The demo `make run` seeds into an empty database: a contact list spread over time zones, the
voice-notification strategy with retries and an SMS follow-up, and a predictive agent-based
campaign on the same list, each with a running job; and the simulated agents (`sim_agents`)
that log in over the gateway's agent WebSocket and work the agent-based job's calls."""
from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from importlib import resources

import phonenumbers

from .core.contacts import parse_contacts
from .store import catalog

CAMPAIGN = "demo-reminders"
AGENT_CAMPAIGN = "demo-sales"
AGENTS = 12                             # simulated agents with the strategy's skill
SKILL = "demo-sales"
# (region, area/trunk prefixes whose numbers fall in distinct time zones)
REGIONS = [("US", "212"), ("US", "312"), ("US", "303"), ("US", "415"), ("US", "808"),
           ("GB", "20"), ("DE", "30"), ("AU", "2"), ("CA", "416"), ("FR", "1")]
FIRST = ["Ada", "Ben", "Chloe", "Dev", "Eva", "Femi", "Gus", "Hana", "Ivan", "Jo", "Kai", "Lena"]
LAST = ["Ng", "Okafor", "Smith", "Garcia", "Müller", "Tanaka", "Brown", "Rossi", "Kaur", "Dubois"]


def strategy_text(name: str = "voice-notify") -> str:
    return resources.files("pom_actors").joinpath(f"examples/{name}.yaml").read_text()


def _number(rng: random.Random, region: str, prefix: str) -> str:
    code = phonenumbers.country_code_for_region(region)
    length = len(str(phonenumbers.example_number(region).national_number))
    while True:
        national = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix)))
        number = phonenumbers.parse(f"+{code}{national}")
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def contacts(n: int, seed: int = 7) -> Iterator[dict]:
    """`n` deterministic contacts; one in four has a second phone, one in three an e-mail."""
    rng = random.Random(seed)
    for i in range(n):
        region, prefix = REGIONS[i % len(REGIONS)]
        first, last = rng.choice(FIRST), rng.choice(LAST)
        yield {"external_id": f"demo-{i:06d}", "first_name": first, "last_name": last,
               "phone1": _number(rng, region, prefix),
               "phone2": _number(rng, region, prefix) if i % 4 == 0 else None,
               "email": f"{first.lower()}.{i}@example.com" if i % 3 == 0 else None,
               "attributes": {"segment": rng.choice(["gold", "silver", "bronze"])}}


def seed(conn, n_contacts: int) -> list[int] | None:
    """Create the demo campaigns in an empty database; returns their ids (None if not empty)."""
    if catalog.has_campaigns(conn):
        return None
    with conn.transaction():
        list_id = catalog.create_list(conn, "demo-contacts", "generated demo contacts", ["segment"])
        good, errors = parse_contacts(contacts(n_contacts))
        if errors:
            raise RuntimeError(f"generated demo contacts refused: {errors[:3]}")
        catalog.add_contacts(conn, list_id, good)
        strategy_id, _ = catalog.save_strategy(conn, strategy_text())
        agents_id, _ = catalog.save_strategy(conn, strategy_text("agents-predictive"))
        return [catalog.create_campaign(conn, CAMPAIGN, strategy_id, list_id,
                                        description="appointment reminders by voice, SMS follow-up"),
                catalog.create_campaign(conn, AGENT_CAMPAIGN, agents_id, list_id,
                                        description="plan renewals by simulated agents, predictive pacing")]


def logins() -> list[str]:
    return [f"demo-agent-{i}" for i in range(AGENTS)]


def create_agents(gateway: str, token: str) -> None:
    """The demo's agents through the REST API (POST /api/v1/agents, an upsert by login)."""
    import httpx

    with httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        for login in logins():
            http.post("/api/v1/agents", json={"login": login, "name": login, "skills": [SKILL]}).raise_for_status()


def work(gateway: str, token: str, time_scale: float, stop: threading.Event) -> threading.Thread:
    """The demo's simulated agents logged in over the gateway's agent WebSocket in a thread of
    their own, working calls until `stop` is set; then they log out."""
    from .sim_agents import SimConfig, SimFloor

    async def floor() -> None:
        agents = SimFloor(gateway.replace("http", "ws", 1) + "/api/v1/agents/ws", logins(),
                          SimConfig(wrap_mean_s=15.0, time_scale=time_scale), token=token)
        await agents.start()
        await asyncio.to_thread(stop.wait)
        await agents.close()

    thread = threading.Thread(target=asyncio.run, args=(floor(),), name="demo-agents", daemon=True)
    thread.start()
    return thread
