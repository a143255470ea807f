"""Python client of the POM gateway: what the CLI uses, and what integrators script with."""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from pom_actors.core.tokens import find_token


class PomError(RuntimeError):
    """An HTTP error from the gateway, with its problem document (`type`, `detail`, `error`,
    `errors`...; docs/api.md, "Errors")."""

    def __init__(self, status: int, body: Any):
        self.status, self.body = status, body
        detail = body.get("detail") or body.get("errors") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {detail}")

    def _member(self, name: str) -> Any:
        return self.body.get(name) if isinstance(self.body, dict) else None

    @property
    def error(self) -> str | None:
        """The machine-readable code (`not_found`, `conflict`, `invalid`, ...)."""
        return self._member("error")

    @property
    def detail(self) -> str | None:
        return self._member("detail")

    @property
    def errors(self) -> list[dict]:
        """The faults of bad input, each with the `path` (or `line` and `field`) at fault."""
        return self._member("errors") or []


class Unauthorized(PomError):
    """401: no token, or one unknown or revoked."""


class Forbidden(PomError):
    """403: the token's role may not do this."""


class NotFound(PomError):
    """404."""


class Conflict(PomError):
    """409: not allowed in the resource's state now (`error` conflict or illegal_transition)."""


class Invalid(PomError):
    """422: bad input; `errors` names every field at fault."""


class Unavailable(PomError):
    """503: a component is down or the load refuses it now (retry later)."""


ERRORS: dict[int, type[PomError]] = {401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
                                     422: Invalid, 503: Unavailable}


def error_for(status: int, body: Any) -> PomError:
    """The typed exception of an answer with `status` (PomError for the others)."""
    return ERRORS.get(status, PomError)(status, body)


class PomClient:
    """`token`: an API token; default `$POM_TOKEN`, else the admin token `pom run` wrote to
    `$POM_DATA_DIR/admin-token` (`.pom-data/admin-token`), else none (every route but
    `/health` then answers 401)."""

    def __init__(self, url: str | None = None, timeout: float = 30.0, token: str | None = None):
        self.url = (url or os.environ.get("POM_URL") or
                    f"http://127.0.0.1:{os.environ.get('POM_HTTP_PORT', '8080')}").rstrip("/")
        token = token or find_token()
        self.http = httpx.Client(base_url=self.url, timeout=timeout,
                                 headers={"Authorization": f"Bearer {token}"} if token else None)

    def _call(self, method: str, path: str, **kwargs) -> Any:
        response = self.http.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text}
        if response.status_code >= 400 and not (path == "/health" and response.status_code == 503):
            raise error_for(response.status_code, body)
        return body

    def _send(self, method: str, path: str, **kwargs) -> None:
        """A request answered with no body (204)."""
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"detail": response.text}
            raise error_for(response.status_code, body)

    def health(self) -> dict:
        return self._call("GET", "/health")

    def jobs(self, state: str | None = None) -> list[dict]:
        return self._call("GET", "/api/v1/jobs", params={"state": state} if state else None)

    def job(self, job_id: int) -> dict:
        return self._call("GET", f"/api/v1/jobs/{job_id}")

    def create_job(self, campaign: int | str, start: bool = True, zone: str | None = None,
                   idempotency_key: str | None = None) -> dict:
        """A job of `campaign`, in `zone` if given (else the campaign's zone). With
        `idempotency_key`, a retry with the same key gets the first answer (one job)."""
        body = {"campaign": campaign, "start": start}
        if zone is not None:
            body["zone"] = zone
        return self._call("POST", "/api/v1/jobs", json=body, headers=_keyed(idempotency_key))

    def command(self, job_id: int, action: str, idempotency_key: str | None = None) -> dict:
        """`start` takes an `idempotency_key`; the other actions are refused twice anyway."""
        return self._call("POST", f"/api/v1/jobs/{job_id}/{action}", headers=_keyed(idempotency_key))

    def pages(self, path: str, params: dict | None = None, limit: int = 1000) -> Iterator[dict]:
        """Every item of a paged list route (`/api/v1/jobs`, `/campaigns`, `/rules`), page by
        page, following the `Link: rel="next"` header (docs/api.md, "Pages")."""
        response = self._page(path, {**(params or {}), "limit": limit})
        while True:
            yield from response.json()
            following = response.links.get("next", {}).get("url")
            if not following:
                return
            response = self._page(following, None)

    def _page(self, url: str, params: dict | None) -> httpx.Response:
        response = self.http.get(url, params=params)
        if response.status_code >= 400:
            raise error_for(response.status_code, response.json())
        return response

    # -- campaigns and the Rule Editor --
    def campaign(self, campaign_id: int) -> dict:
        return self._call("GET", f"/api/v1/campaigns/{campaign_id}")

    def update_campaign(self, campaign_id: int, **changes) -> dict:
        """Any of description, priority, enabled, finish, schedule (None removes it)."""
        return self._call("PATCH", f"/api/v1/campaigns/{campaign_id}", json=changes)

    def delete_campaign(self, campaign_id: int) -> None:
        """Conflict while one of its jobs has not ended."""
        self._send("DELETE", f"/api/v1/campaigns/{campaign_id}")

    def rules(self, campaign_id: int | None = None, system: bool = False) -> list[dict]:
        params = {"system": "true"} if system else {"campaign_id": campaign_id} if campaign_id else None
        return list(self.pages("/api/v1/rules", params))

    def rule(self, rule_id: int) -> dict:
        return self._call("GET", f"/api/v1/rules/{rule_id}")

    def create_rule(self, kind: str, params: dict | None = None, campaign_id: int | None = None,
                    enabled: bool = True) -> dict:
        return self._call("POST", "/api/v1/rules", json={"kind": kind, "params": params or {},
                                                         "campaign_id": campaign_id, "enabled": enabled})

    def replace_rule(self, rule_id: int, kind: str, params: dict | None = None, campaign_id: int | None = None,
                     enabled: bool = True) -> dict:
        return self._call("PUT", f"/api/v1/rules/{rule_id}", json={"kind": kind, "params": params or {},
                                                                   "campaign_id": campaign_id, "enabled": enabled})

    def delete_rule(self, rule_id: int) -> None:
        self._send("DELETE", f"/api/v1/rules/{rule_id}")

    # -- web services for external applications (an IVR during a call) --
    def contact(self, contact_id: int) -> dict:
        return self._call("GET", f"/api/v1/contacts/{contact_id}")

    def update_contact_attributes(self, contact_id: int, attributes: dict) -> dict:
        """Merge `attributes` (a key with None removes it); the contact as it now is."""
        return self._call("PATCH", f"/api/v1/contacts/{contact_id}/attributes", json=attributes)

    def current_attempt(self, contact_id: int) -> dict | None:
        """The contact's attempt in flight, or None."""
        return self._call("GET", f"/api/v1/contacts/{contact_id}/attempt")["attempt"]

    def attempt(self, attempt_id: str) -> dict:
        return self._call("GET", f"/api/v1/attempts/{attempt_id}")

    def attempt_contact(self, attempt_id: str) -> dict:
        return self._call("GET", f"/api/v1/attempts/{attempt_id}/contact")

    def update_attempt_contact_attributes(self, attempt_id: str, attributes: dict) -> dict:
        return self._call("PATCH", f"/api/v1/attempts/{attempt_id}/contact/attributes", json=attributes)

    def set_attempt_code(self, attempt_id: str, code: str) -> dict:
        """Conflict while the attempt is in flight; Invalid for a code not of its campaign."""
        return self._call("PUT", f"/api/v1/attempts/{attempt_id}/code", json={"code": code})

    def create_strategy(self, document: dict, list_id: int | None = None) -> dict:
        return self._call("POST", "/api/v1/strategies", json=document,
                          params={"list_id": list_id} if list_id else None)

    def create_list(self, name: str, description: str = "", attributes: list[str] = ()) -> dict:
        return self._call("POST", "/api/v1/lists", json={"name": name, "description": description,
                                                         "attributes": list(attributes)})

    def add_contacts(self, list_id: int, rows: list[dict]) -> dict:
        return self._call("POST", f"/api/v1/lists/{list_id}/contacts", json=rows)

    def create_campaign(self, name: str, strategy_id: int, list_id: int, **options) -> dict:
        return self._call("POST", "/api/v1/campaigns",
                          json={"name": name, "strategy_id": strategy_id, "list_id": list_id, **options})

    def campaigns(self) -> list[dict]:
        return self._call("GET", "/api/v1/campaigns")

    # -- zones (docs/operations.md, "Zones") --
    def zones(self) -> dict:
        """`{"zones": [...], "default_zone": ..., "unzoned_servers": ...}`."""
        return self._call("GET", "/api/v1/zones")

    def zone(self, name: str) -> dict:
        return self._call("GET", f"/api/v1/zones/{name}")

    def create_zone(self, name: str, failover_zone: str | None = None, state: str = "up", reason: str = "") -> dict:
        return self._call("POST", "/api/v1/zones", json={"name": name, "failover_zone": failover_zone,
                                                        "state": state, "reason": reason})

    def set_zone_failover(self, name: str, failover_zone: str | None) -> dict:
        return self._call("PUT", f"/api/v1/zones/{name}", json={"failover_zone": failover_zone})

    def set_zone_state(self, name: str, state: str, reason: str = "") -> dict:
        """`up`, `down` or `maintenance`: the director moves the zone's jobs at its next tick."""
        return self._call("POST", f"/api/v1/zones/{name}/state", json={"state": state, "reason": reason})

    def delete_zone(self, name: str) -> None:
        self._send("DELETE", f"/api/v1/zones/{name}")

    # -- reports (docs/api.md, "Reports"): `since`/`until` ISO 8601; default the last 24 h --
    def report_attempts(self, *, job: int | None = None, since: str | None = None, until: str | None = None,
                        bucket_s: int | None = None, limit: int | None = None) -> dict:
        """Attempts by completion code per job and bucket (an hour unless `bucket_s`)."""
        return self._report("attempts", job=job, since=since, until=until, bucket_s=bucket_s, limit=limit)

    def report_abandons(self, *, job: int | None = None, since: str | None = None, until: str | None = None,
                        window_s: int | None = None, limit: int | None = None) -> dict:
        """Abandon rate per job (`at` null: the whole range) and window (15 min unless `window_s`)."""
        return self._report("abandons", job=job, since=since, until=until, window_s=window_s, limit=limit)

    def report_agent_time(self, *, agent: int | None = None, since: str | None = None, until: str | None = None,
                          limit: int | None = None) -> dict:
        """Seconds per agent and state within the range."""
        return self._report("agent-time", agent=agent, since=since, until=until, limit=limit)

    def _report(self, name: str, **params) -> dict:
        return self._call("GET", f"/api/v1/reports/{name}", params={k: v for k, v in params.items() if v is not None})

    # -- purges and retention (docs/operations.md, "Retention and purges") --
    def purges(self, *, limit: int | None = None, before: int | None = None) -> dict:
        """`{"runs": [...newest first], "next": <before of the next page> | None}`."""
        return self._call("GET", "/api/v1/purges",
                          params={k: v for k, v in dict(limit=limit, before=before).items() if v is not None})

    def purge(self, run_id: int) -> dict:
        return self._call("GET", f"/api/v1/purges/{run_id}")

    def purge_now(self) -> dict:
        """Queue a purge (admin); the director carries it out. PomError 409 if one is pending."""
        return self._call("POST", "/api/v1/purges")

    def retention(self) -> dict:
        return self._call("GET", "/api/v1/purges/config")

    def set_retention(self, config: dict) -> dict:
        """Replace the retention config (admin); left-out fields take the defaults."""
        return self._call("PUT", "/api/v1/purges/config", json=config)

    # -- tokens and the audit log (docs/api.md, "Authentication") --
    def tokens(self) -> list[dict]:
        return self._call("GET", "/api/v1/tokens")

    def create_token(self, name: str, role: str, agent_id: int | None = None) -> dict:
        """A new token; its value (`token`) is in this answer only."""
        body = {"name": name, "role": role}
        if agent_id is not None:
            body["agent_id"] = agent_id
        return self._call("POST", "/api/v1/tokens", json=body)

    def revoke_token(self, token_id: int) -> None:
        self._send("DELETE", f"/api/v1/tokens/{token_id}")

    def audit(self, *, after: int | None = None, limit: int | None = None, since: str | None = None,
              until: str | None = None, token: int | None = None, path: str | None = None,
              method: str | None = None) -> dict:
        """One page of the audit log: `{"entries": [...], "next": <after of the next page> | None}`."""
        params = {k: v for k, v in dict(after=after, limit=limit, since=since, until=until, token=token,
                                         path=path, method=method).items() if v is not None}
        return self._call("GET", "/api/v1/audit", params=params)

    # -- file imports (docs/imports.md): contact lists and DNC lists --
    def start_import(self, list_id: int, path: str, *, dnc: bool = False,
                     progress: Callable[[int, int], None] | None = None, idempotency_key: str | None = None,
                     **options) -> dict:
        """Upload the file at `path` into contact list `list_id` (into DNC list `list_id` with
        `dnc=True`) with the import's options (`encoding`, `delimiter`, `mapping` (a dict),
        `region`, `dedupe_key`, `policy`, `max_field_chars`, `splitter` (a dict); a DNC import:
        `mode`); `progress(sent,
        total)` is called as the bytes go; with `idempotency_key`, a retry of the same file and
        options gets the first answer (one import). The answer: `{"id", "state": "queued", ...}`."""
        form = {k: (json.dumps(v) if k in ("mapping", "splitter") else str(v))
                for k, v in options.items() if v is not None}
        with open(path, "rb") as f:
            body = _Progress(f, progress) if progress else f
            return self._call("POST", f"/api/v1/{'dnc-lists' if dnc else 'lists'}/{list_id}/imports",
                              files={"file": (os.path.basename(path), body, "text/csv")}, data=form,
                              headers=_keyed(idempotency_key))

    def import_status(self, import_id: int) -> dict:
        """State and counts (`rows_read`, `rows_loaded`, `rows_rejected`, `duplicates`,
        `dnc_flagged`, `progress` 0..1, `message` when it failed)."""
        return self._call("GET", f"/api/v1/imports/{import_id}")

    def import_rejects(self, import_id: int, csv: bool = False, limit: int | None = None) -> Any:
        """The rejected rows: `{"rejects": [{line, field, reason, raw}]}`, or the CSV text
        (cells that a spreadsheet would evaluate are neutralised)."""
        params = {"format": "csv" if csv else "json", **({"limit": limit} if limit else {})}
        if not csv:
            return self._call("GET", f"/api/v1/imports/{import_id}/rejects", params=params)
        response = self.http.get(f"/api/v1/imports/{import_id}/rejects", params=params)
        if response.status_code >= 400:
            raise PomError(response.status_code, response.json())
        return response.text

    def import_command(self, import_id: int, command: str) -> dict:
        """`pause`, `resume` or `stop`."""
        return self._call("POST", f"/api/v1/imports/{import_id}/{command}")

    # -- DNC lists (docs/api.md, "DNC lists"): at most 10,000 addresses per call --
    def dnc_lists(self) -> list[dict]:
        return self._call("GET", "/api/v1/dnc-lists")

    def dnc_list(self, list_id: int) -> dict:
        return self._call("GET", f"/api/v1/dnc-lists/{list_id}")

    def create_dnc_list(self, name: str, description: str = "", all_campaigns: bool = False) -> dict:
        return self._call("POST", "/api/v1/dnc-lists", json={"name": name, "description": description,
                                                             "all_campaigns": all_campaigns})

    def delete_dnc_list(self, list_id: int) -> None:
        self._send("DELETE", f"/api/v1/dnc-lists/{list_id}")

    def add_dnc(self, list_id: int, addresses: list[str] = (), contact_ids: list[int] = (),
                region: str | None = None) -> dict:
        """`{"added", "already", "addresses": [stored forms]}`; honoured from the next batch checked."""
        return self._call("POST", f"/api/v1/dnc-lists/{list_id}/entries",
                          json={"addresses": list(addresses), "contact_ids": list(contact_ids), "region": region})

    def remove_dnc(self, list_id: int, addresses: list[str] = (), contact_ids: list[int] = (),
                   region: str | None = None) -> dict:
        return self._call("POST", f"/api/v1/dnc-lists/{list_id}/entries/remove",
                          json={"addresses": list(addresses), "contact_ids": list(contact_ids), "region": region})

    def dnc_entries(self, list_id: int, after: int = 0, limit: int = 1000) -> dict:
        """One page: `{"entries": [...], "next": <after of the next page> | None}`."""
        return self._call("GET", f"/api/v1/dnc-lists/{list_id}/entries", params={"after": after, "limit": limit})

    def lookup_dnc(self, addresses: list[str], campaign_id: int | None = None, region: str | None = None) -> dict:
        """Per address: its stored form, the lists holding it, `blocked` (for the campaign if given)."""
        return self._call("POST", "/api/v1/dnc-lists/lookup",
                          json={"addresses": list(addresses), "campaign_id": campaign_id, "region": region})

    def campaign_dnc_lists(self, campaign_id: int) -> list[dict]:
        return self._call("GET", f"/api/v1/campaigns/{campaign_id}/dnc-lists")

    def attach_dnc(self, campaign_id: int, list_id: int) -> dict:
        return self._call("PUT", f"/api/v1/campaigns/{campaign_id}/dnc-lists/{list_id}")

    def detach_dnc(self, campaign_id: int, list_id: int) -> None:
        self._send("DELETE", f"/api/v1/campaigns/{campaign_id}/dnc-lists/{list_id}")


class _Progress:
    """A file for httpx to upload that reports the bytes read so far (httpx reads a file
    field in blocks and takes its length from `fileno`)."""

    def __init__(self, f, report: Callable[[int, int], None]):
        self.f, self.report = f, report
        self.total, self.sent = os.fstat(f.fileno()).st_size, 0

    def read(self, n: int = -1) -> bytes:
        block = self.f.read(n)
        self.sent += len(block)
        self.report(self.sent, self.total)
        return block

    def __getattr__(self, name: str):
        return getattr(self.f, name)


def _keyed(idempotency_key: str | None) -> dict[str, str] | None:
    return {"Idempotency-Key": idempotency_key} if idempotency_key else None
