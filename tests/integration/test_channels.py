"""E-mail, SMS and webhook handlers, end to end, against real local servers."""
from __future__ import annotations

from .conftest import phone_contacts


def _one_handler(name: str, handler: dict) -> dict:
    return {"name": name, "initial": "h", "handlers": {"h": {**handler, "results": {
        "delivered": "done", "default": "done"}}}}


def test_email_handler_sends_real_smtp(campaigns, conn, smtp):
    before = len(smtp.messages)
    strategy = _one_handler("mail", {"type": "email", "addresses": ["email"], "sender": "pom@example.com",
                                     "subject": "Reminder for {first_name}",
                                     "message": "Dear {first_name}, see you tomorrow."})
    contacts = phone_contacts(30)
    job_id = campaigns.start(campaigns.make(strategy, contacts))
    assert campaigns.wait(job_id)["state"] == "completed"
    got = smtp.messages[before:]
    assert len(got) == 30
    by_to = {m["To"]: m for m in got}
    first = contacts[0]
    assert by_to[first["email"]]["Subject"] == f"Reminder for {first['first_name']}"
    assert f"Dear {first['first_name']}" in by_to[first["email"]].get_payload()
    codes = conn.execute("SELECT code, count(*) FROM attempts WHERE job_id = %s GROUP BY 1", (job_id,)).fetchall()
    assert codes == [("delivered", 30)]


def test_sms_handler_posts_to_the_sms_provider(campaigns, conn, sink):
    strategy = _one_handler("sms", {"type": "sms", "addresses": ["phone1"], "sender": "POM",
                                    "message": "Hi {first_name}, reply STOP to opt out"})
    contacts = phone_contacts(25)
    job_id = campaigns.start(campaigns.make(strategy, contacts))
    assert campaigns.wait(job_id)["state"] == "completed"
    sent = [r for r in sink.requests if r["path"] == "/sms" and r["body"]["to"] in {c["phone1"] for c in contacts}]
    assert len(sent) == 25
    assert all(r["auth"] == "Bearer secret-token" and r["body"]["from"] == "POM" for r in sent)
    assert any(r["body"]["text"] == f"Hi {contacts[0]['first_name']}, reply STOP to opt out" for r in sent)
    assert conn.execute("SELECT count(*) FROM attempts WHERE job_id = %s AND code = 'delivered'",
                        (job_id,)).fetchone()[0] == 25


def test_webhook_answer_maps_to_completion_codes(campaigns, conn, sink):
    sink.webhook_code = "answer_human"
    strategy = _one_handler("hook", {"type": "custom", "addresses": ["email"], "url": sink.url + "/hook",
                                     "message": "notify {first_name}", "timeout": 5, "retries": 1})
    contacts = phone_contacts(20)
    job_id = campaigns.start(campaigns.make(strategy, contacts))
    assert campaigns.wait(job_id)["state"] == "completed"
    hits = [r for r in sink.requests if r["path"] == "/hook"
            and r["body"].get("address") in {c["email"] for c in contacts}]
    assert len(hits) == 20
    assert conn.execute("SELECT array_agg(DISTINCT code) FROM attempts WHERE job_id = %s",
                        (job_id,)).fetchone()[0] == ["answer_human"]
