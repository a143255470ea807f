"""Idempotency keys against the real database: a job created and an import started twice with
one key make one job and one import; the key with another body is refused; the keys table
holds the kept answers with their expiry."""
from __future__ import annotations


from .conftest import phone_contacts

STRATEGY = {"name": "idem", "initial": "call",
            "handlers": {"call": {"type": "call", "addresses": ["phone1"], "message": "Hello",
                                  "pacing": {"max_concurrent": 50}, "results": {"default": "done"}}}}


def test_one_job_for_one_key(campaigns, conn, http):
    campaign_id = campaigns.make(STRATEGY, phone_contacts(2))
    body = {"campaign": campaign_id, "start": False}
    first = http.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": f"job-{campaign_id}"})
    again = http.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": f"job-{campaign_id}"})
    assert first.status_code == again.status_code == 201, first.text
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    assert conn.execute("SELECT count(*) FROM jobs WHERE campaign_id = %s", (campaign_id,)).fetchone()[0] == 1
    other = http.post("/api/v1/jobs", json={**body, "start": True}, headers={"Idempotency-Key": f"job-{campaign_id}"})
    assert other.status_code == 422 and other.json()["errors"][0]["path"] == "header.Idempotency-Key"

    job_id = first.json()["id"]
    started = http.post(f"/api/v1/jobs/{job_id}/start", headers={"Idempotency-Key": "start-once"})
    retried = http.post(f"/api/v1/jobs/{job_id}/start", headers={"Idempotency-Key": "start-once"})
    assert started.status_code == retried.status_code == 200 and retried.json() == started.json()
    status, expires = conn.execute("SELECT status, expires_at - created_at FROM idempotency_keys "
                                   "WHERE scope = %s AND key = 'start-once'", (f"POST /api/v1/jobs/{job_id}/start",)).fetchone()
    assert status == 200 and expires.total_seconds() == 86400
    campaigns.command(job_id, "stop")


def test_one_import_for_one_key(conn, http):
    list_id = http.post("/api/v1/lists", json={"name": "idem-import", "attributes": []}).json()["id"]
    data = "external_id,first_name,phone1\n" + "".join(f"i{k},F,+1212555{k:04d}\n" for k in range(20))
    send = lambda text: http.post(f"/api/v1/lists/{list_id}/imports", headers={"Idempotency-Key": "import-1"},
                                  files={"file": ("contacts.csv", text, "text/csv")})
    first, again = send(data), send(data)
    assert first.status_code == again.status_code == 202, first.text
    assert again.json()["id"] == first.json()["id"]
    assert conn.execute("SELECT count(*) FROM import_jobs WHERE list_id = %s", (list_id,)).fetchone()[0] == 1
    assert send(data + "i99,F,+12125559999\n").status_code == 422
