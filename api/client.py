"""Python client of the POM gateway: what the CLI uses, and what integrators script with."""
from __future__ import annotations

import asyncio
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, BinaryIO

import httpx

from pom_actors.core.lifecycle import TERMINAL
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


class TooLarge(PomError):
    """413: the request body is over the gateway's limit (`POM_MAX_BODY_BYTES`)."""


class Unavailable(PomError):
    """503: a component is down or the load refuses it now (retry later)."""


class WaitTimeout(TimeoutError):
    """`wait_until_done` ran out of time; `job` is the job as last read (it goes on)."""

    def __init__(self, job: dict, timeout: float):
        self.job = job
        super().__init__(f"job {job['id']} still {job['state']} after {timeout:g} s")


ERRORS: dict[int, type[PomError]] = {401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
                                     413: TooLarge, 422: Invalid, 503: Unavailable}


def error_for(status: int, body: Any) -> PomError:
    """The typed exception of an answer with `status` (PomError for the others)."""
    return ERRORS.get(status, PomError)(status, body)


class Routes(ABC):
    """Every route of the gateway, each method a pure description of its request
    (`return self._call(...)`, no work on the answer), so that the same methods serve both
    transports: on `PomClient` they return the answer, on `AsyncPomClient` a coroutine of it.
    Whatever needs more than one request or a local resource (`pages`, `wait_until_done`, a
    file upload) goes through a primitive each transport implements (`_collect`, `_upload`)."""

    @abstractmethod
    def _call(self, method: str, path: str, *, pick: str | None = None, as_text: bool = False, **kwargs) -> Any:
        """The answer's JSON body (None for 204; its member `pick`; its text with `as_text`),
        or the typed exception of an error answer."""

    @abstractmethod
    def _collect(self, path: str, params: dict | None = None) -> list[dict]:
        """Every item of a paged list route (`pages`) as one list."""

    @abstractmethod
    def _upload(self, path: str, file: str, progress: Callable[[int, int], None] | None, **kwargs) -> Any:
        """POST the file at `file` as the multipart field `file` (`progress(sent, total)` as it goes)."""

    def health(self) -> dict:
        return self._call("GET", "/health")

    def jobs(self, state: str | None = None, campaign_id: int | None = None) -> list[dict]:
        """Every job (all pages), in `state` and of `campaign_id` if given."""
        return self._collect("/api/v1/jobs", _given(state=state, campaign_id=campaign_id))

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

    def start_job(self, campaign: int | str, zone: str | None = None, idempotency_key: str | None = None) -> dict:
        """A new job of `campaign` (id or name), started: pass it to `wait_until_done`."""
        return self.create_job(campaign, True, zone, idempotency_key)

    def command(self, job_id: int, action: str, idempotency_key: str | None = None) -> dict:
        """`start` takes an `idempotency_key`; the other actions are refused twice anyway."""
        return self._call("POST", f"/api/v1/jobs/{job_id}/{action}", headers=_keyed(idempotency_key))

    def start(self, job_id: int, idempotency_key: str | None = None) -> dict:
        """Start a queued job (`create_job(..., start=False)`)."""
        return self.command(job_id, "start", idempotency_key)

    def pause(self, job_id: int) -> dict:
        return self.command(job_id, "pause")

    def resume(self, job_id: int) -> dict:
        return self.command(job_id, "resume")

    def stop(self, job_id: int) -> dict:
        return self.command(job_id, "stop")

    def job_pacing(self, job_id: int) -> dict:
        """The pacing figures of each handler of a running job, per manager."""
        return self._call("GET", f"/api/v1/jobs/{job_id}/pacing")

    def job_filter(self, job_id: int) -> dict:
        return self._call("GET", f"/api/v1/jobs/{job_id}/filter")

    def set_job_filter(self, job_id: int, expression: str | None) -> dict:
        """The filter in force of a job that has not ended (None: none)."""
        return self._call("PUT", f"/api/v1/jobs/{job_id}/filter", json={"expression": expression})

    # -- run-time changes of a job (PATCH /api/v1/jobs/{id}) --
    def update_job(self, job_id: int, **changes) -> dict:
        """Any of `priority` (1..10; None: the campaign's), `pacing` ({handler: {settings,
        max_concurrent, attempts_per_second}}; None for a handler or for all: the strategy's),
        `filter_id` (a filter template; None: no filter). The job as it now is."""
        return self._call("PATCH", f"/api/v1/jobs/{job_id}", json=changes)

    def set_dialling_order(self, job_id: int, order: list[str]) -> dict:
        """The order the job's next claims take priority contacts, retries and regular contacts."""
        return self.update_job(job_id, dialling_order=order)

    def add_priority_contacts(self, job_id: int, contact_ids: list[int]) -> dict:
        """Contacts of the job's lists dialled as priority contacts: `added`, `raised`, `skipped`."""
        return self._call("POST", f"/api/v1/jobs/{job_id}/priority-contacts", json={"contact_ids": contact_ids})

    def set_priority(self, job_id: int, priority: int | None) -> dict:
        """The job's own priority (None: back to its campaign's)."""
        return self.update_job(job_id, priority=priority)

    def campaigns(self, enabled: bool | None = None) -> list[dict]:
        """Every campaign (all pages); only the enabled or disabled ones if `enabled` is given."""
        return self._collect("/api/v1/campaigns", _given(enabled=None if enabled is None else str(enabled).lower()))

    # -- campaigns and the Rule Editor --
    def campaign(self, campaign_id: int) -> dict:
        return self._call("GET", f"/api/v1/campaigns/{campaign_id}")

    def update_campaign(self, campaign_id: int, **changes) -> dict:
        """Any of description, priority, enabled, finish, schedule (None removes it), lists
        ([{list_id, priority, sort}], all of them), strategy_id (for jobs created after)."""
        return self._call("PATCH", f"/api/v1/campaigns/{campaign_id}", json=changes)

    def delete_campaign(self, campaign_id: int) -> None:
        """Conflict while one of its jobs has not ended."""
        return self._call("DELETE", f"/api/v1/campaigns/{campaign_id}")

    def rules(self, campaign_id: int | None = None, system: bool = False) -> list[dict]:
        params = {"system": "true"} if system else {"campaign_id": campaign_id} if campaign_id else None
        return self._collect("/api/v1/rules", params)

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
        return self._call("DELETE", f"/api/v1/rules/{rule_id}")

    # -- completion codes --
    def completion_codes(self, campaign_id: int | None = None, system: bool | None = None,
                         enabled: bool | None = None) -> list[dict]:
        """Every code (all pages): a campaign's custom codes, the system's (`system=True`) or
        every custom code (`system=False`); only enabled (or disabled) ones."""
        return self._collect("/api/v1/completion-codes", _given(
            campaign_id=campaign_id, system=None if system is None else str(system).lower(),
            enabled=None if enabled is None else str(enabled).lower()))

    def completion_code(self, code_id: int) -> dict:
        return self._call("GET", f"/api/v1/completion-codes/{code_id}")

    def create_completion_code(self, campaign_id: int, name: str, **flags: bool) -> dict:
        """A custom code of the campaign; `flags`: final, contact_uncallable, address_uncallable,
        human_contact, counts_as_abandon (default false)."""
        return self._call("POST", "/api/v1/completion-codes", json={"campaign_id": campaign_id, "name": name, **flags})

    def update_completion_code(self, code_id: int, **flags: bool) -> dict:
        """Change a custom code's flags, or `enabled=False` to disable it (Conflict: system code)."""
        return self._call("PATCH", f"/api/v1/completion-codes/{code_id}", json=flags)

    def delete_completion_code(self, code_id: int) -> None:
        """Conflict for a system code and for one the campaign's strategy declares."""
        return self._call("DELETE", f"/api/v1/completion-codes/{code_id}")

    # -- agent scripts --
    def agent_scripts(self, enabled: bool | None = None) -> list[dict]:
        """Every agent script (all pages); only the enabled (or disabled) ones if asked."""
        return self._collect("/api/v1/agent-scripts", _given(enabled=None if enabled is None else str(enabled).lower()))

    def agent_script(self, script_id: int) -> dict:
        return self._call("GET", f"/api/v1/agent-scripts/{script_id}")

    def create_agent_script(self, name: str, body: str, kind: str = "text", description: str = "",
                            enabled: bool = True) -> dict:
        """`kind` "text" (shown to the agent) or "url" (opened by the desktop); `body` a
        template over the contact's attributes."""
        return self._call("POST", "/api/v1/agent-scripts", json={"name": name, "kind": kind, "body": body,
                                                                 "description": description, "enabled": enabled})

    def update_agent_script(self, script_id: int, **changes) -> dict:
        """Any of name, kind, body, description, enabled."""
        return self._call("PATCH", f"/api/v1/agent-scripts/{script_id}", json=changes)

    def delete_agent_script(self, script_id: int) -> None:
        """Conflict for a script a campaign's strategy names."""
        return self._call("DELETE", f"/api/v1/agent-scripts/{script_id}")

    # -- web services for external applications (an IVR during a call) --
    def contact(self, contact_id: int) -> dict:
        return self._call("GET", f"/api/v1/contacts/{contact_id}")

    def delete_contact(self, contact_id: int) -> None:
        """No job dials it again; Conflict while it has an attempt in flight."""
        return self._call("DELETE", f"/api/v1/contacts/{contact_id}")

    def update_contact_attributes(self, contact_id: int, attributes: dict) -> dict:
        """Merge `attributes` (a key with None removes it); the contact as it now is."""
        return self._call("PATCH", f"/api/v1/contacts/{contact_id}/attributes", json=attributes)

    def current_attempt(self, contact_id: int) -> dict | None:
        """The contact's attempt in flight, or None."""
        return self._call("GET", f"/api/v1/contacts/{contact_id}/attempt", pick="attempt")

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

    def strategies(self, name: str | None = None) -> list[dict]:
        """Every version by id, or `name`'s; each with `latest`, its name's newest version."""
        return self._collect("/api/v1/strategies", {"name": name} if name else None)

    def strategy(self, strategy_id: int) -> dict:
        return self._call("GET", f"/api/v1/strategies/{strategy_id}")

    def delete_strategy(self, strategy_id: int) -> None:
        """Conflict while a campaign uses the version or a job ran with it."""
        return self._call("DELETE", f"/api/v1/strategies/{strategy_id}")

    def lists(self, name: str | None = None) -> list[dict]:
        """Every contact list (all pages), or the one named `name`."""
        return self._collect("/api/v1/lists", _given(name=name))

    def contact_list(self, list_id: int) -> dict:
        """With `contacts`, its number of contacts."""
        return self._call("GET", f"/api/v1/lists/{list_id}")

    def update_list(self, list_id: int, **changes) -> dict:
        """Any of name, description; the list as it now is."""
        return self._call("PATCH", f"/api/v1/lists/{list_id}", json=changes)

    def delete_list(self, list_id: int) -> None:
        """The list and its contacts; Conflict naming what still uses it."""
        return self._call("DELETE", f"/api/v1/lists/{list_id}")

    def list_contacts(self, list_id: int, after: int = 0, limit: int = 1000) -> list[dict]:
        """One page of the list's contacts by id (every one: `pages(f"/api/v1/lists/{id}/contacts")`)."""
        return self._call("GET", f"/api/v1/lists/{list_id}/contacts", params={"after": after, "limit": limit})

    def create_list(self, name: str, description: str = "", attributes: list[str] = ()) -> dict:
        return self._call("POST", "/api/v1/lists", json={"name": name, "description": description,
                                                         "attributes": list(attributes)})

    def add_contacts(self, list_id: int, rows: list[dict]) -> dict:
        return self._call("POST", f"/api/v1/lists/{list_id}/contacts", json=rows)

    def create_campaign(self, name: str, strategy_id: int, list_id: int | None = None, **options) -> dict:
        """A campaign over `list_id`, or over several lists with `lists=[{list_id, priority, sort}]`."""
        body = {"name": name, "strategy_id": strategy_id, **options}
        if list_id is not None:
            body["list_id"] = list_id
        return self._call("POST", "/api/v1/campaigns", json=body)

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
        return self._call("DELETE", f"/api/v1/zones/{name}")

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
        return self._call("GET", f"/api/v1/reports/{name}", params=_given(**params))

    # -- purges and retention (docs/operations.md, "Retention and purges") --
    def purges(self, *, limit: int | None = None, before: int | None = None) -> dict:
        """`{"runs": [...newest first], "next": <before of the next page> | None}`."""
        return self._call("GET", "/api/v1/purges",
                          params=_given(limit=limit, before=before))

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
    def tokens(self, role: str | None = None, revoked: bool | None = None) -> list[dict]:
        """Every token (all pages), of `role` and only the revoked (or not revoked) if given."""
        return self._collect("/api/v1/tokens", _given(role=role, revoked=None if revoked is None else str(revoked).lower()))

    def create_token(self, name: str, role: str, agent_id: int | None = None) -> dict:
        """A new token; its value (`token`) is in this answer only."""
        body = {"name": name, "role": role}
        if agent_id is not None:
            body["agent_id"] = agent_id
        return self._call("POST", "/api/v1/tokens", json=body)

    def revoke_token(self, token_id: int) -> None:
        return self._call("DELETE", f"/api/v1/tokens/{token_id}")

    def audit(self, *, after: int | None = None, limit: int | None = None, since: str | None = None,
              until: str | None = None, token: int | None = None, path: str | None = None,
              method: str | None = None) -> dict:
        """One page of the audit log: `{"entries": [...], "next": <after of the next page> | None}`."""
        return self._call("GET", "/api/v1/audit", params=_given(after=after, limit=limit, since=since, until=until,
                                                                token=token, path=path, method=method))

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
        return self._upload(f"/api/v1/{'dnc-lists' if dnc else 'lists'}/{list_id}/imports", path, progress,
                            data=form, headers=_keyed(idempotency_key))

    def start_query_import(self, list_id: int, postgres: dict, *, idempotency_key: str | None = None,
                           **options) -> dict:
        """An import of the rows of one SELECT on another PostgreSQL database (`postgres`:
        `query`, `dsn` or `host`/`port`/`dbname`/`user`, `password_ref`, ...: docs/imports.md)
        with the same options as a file's. The answer: `{"id", "state": "queued", ...}`."""
        body = {"source": {"postgres": postgres}, **{k: v for k, v in options.items() if v is not None}}
        return self._call("POST", f"/api/v1/lists/{list_id}/imports", json=body,
                          headers=_keyed(idempotency_key))

    # -- import schedules (docs/imports.md, "Scheduled imports") --
    def create_import_schedule(self, document: dict) -> dict:
        """`{"name", "list_id", "schedule": {"cron", "timezone"}, "source": {"postgres": ...},
        "options"}`: run by the director at each due time."""
        return self._call("POST", "/api/v1/import-schedules", json=document)

    def import_schedules(self) -> list[dict]:
        """Every import schedule (all pages)."""
        return self._collect("/api/v1/import-schedules")

    def import_schedule(self, schedule_id: int) -> dict:
        return self._call("GET", f"/api/v1/import-schedules/{schedule_id}")

    def update_import_schedule(self, schedule_id: int, changes: dict) -> dict:
        return self._call("PATCH", f"/api/v1/import-schedules/{schedule_id}", json=changes)

    def delete_import_schedule(self, schedule_id: int) -> None:
        return self._call("DELETE", f"/api/v1/import-schedules/{schedule_id}")

    def imports(self, list_id: int | None = None, dnc_list_id: int | None = None, state: str | None = None) -> list[dict]:
        """Every import (all pages), into a contact list, a DNC list, in a state if given."""
        return self._collect("/api/v1/imports", _given(list_id=list_id, dnc_list_id=dnc_list_id, state=state))

    def import_status(self, import_id: int) -> dict:
        """State and counts (`rows_read`, `rows_loaded`, `rows_rejected`, `duplicates`,
        `dnc_flagged`, `progress` 0..1, `message` when it failed)."""
        return self._call("GET", f"/api/v1/imports/{import_id}")

    def import_rejects(self, import_id: int, csv: bool = False, limit: int | None = None,
                       after: int | None = None) -> Any:
        """A page of the rejected rows by line (at most `limit`, 1-10,000, default 10,000; those
        after line `after`): `{"rejects": [{line, field, reason, raw}], "next": <after of the
        next page> | None}`, or the CSV text (cells that a spreadsheet would evaluate are
        neutralised; its next page in the `Link` header)."""
        params = {"format": "csv" if csv else "json", **_given(limit=limit, after=after)}
        return self._call("GET", f"/api/v1/imports/{import_id}/rejects", params=params, as_text=csv)

    def import_command(self, import_id: int, command: str) -> dict:
        """`pause`, `resume` or `stop`."""
        return self._call("POST", f"/api/v1/imports/{import_id}/{command}")

    # -- DNC lists (docs/api.md, "DNC lists"): at most 10,000 addresses per call --
    def dnc_lists(self, name: str | None = None) -> list[dict]:
        """Every DNC list (all pages), or the one named `name`."""
        return self._collect("/api/v1/dnc-lists", _given(name=name))

    def dnc_list(self, list_id: int) -> dict:
        return self._call("GET", f"/api/v1/dnc-lists/{list_id}")

    def create_dnc_list(self, name: str, description: str = "", all_campaigns: bool = False) -> dict:
        return self._call("POST", "/api/v1/dnc-lists", json={"name": name, "description": description,
                                                             "all_campaigns": all_campaigns})

    def delete_dnc_list(self, list_id: int) -> None:
        return self._call("DELETE", f"/api/v1/dnc-lists/{list_id}")

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
        """Every DNC list that applies to the campaign (all pages)."""
        return self._collect(f"/api/v1/campaigns/{campaign_id}/dnc-lists")

    def attach_dnc(self, campaign_id: int, list_id: int) -> dict:
        return self._call("PUT", f"/api/v1/campaigns/{campaign_id}/dnc-lists/{list_id}")

    def detach_dnc(self, campaign_id: int, list_id: int) -> None:
        return self._call("DELETE", f"/api/v1/campaigns/{campaign_id}/dnc-lists/{list_id}")

    # -- agents and licenses (docs/api.md, "Agents and licenses") --
    def agents(self, job_id: int | None = None, state: str | None = None, skill: str | None = None,
               group: str | None = None) -> list[dict]:
        """Every agent (all pages): of a job, in a state, with a skill, in a group if given."""
        return self._collect("/api/v1/agents", _given(job_id=job_id, state=state, skill=skill, group=group))

    def agent(self, login: str) -> dict:
        return self._call("GET", f"/api/v1/agents/{login}")

    def create_agent(self, login: str, name: str = "", skills: list[str] = (), groups: list[str] = ()) -> dict:
        """A new agent, or the name, skills and groups of an existing login replaced."""
        return self._call("POST", "/api/v1/agents", json={"login": login, "name": name, "skills": list(skills),
                                                          "groups": list(groups)})

    def update_agent(self, login: str, *, name: str | None = None, skills: list[str] | None = None,
                     groups: list[str] | None = None) -> dict:
        """Change an agent's name, skills or groups (those not None; [] empties a list)."""
        body = {k: (v if k == "name" else list(v)) for k, v in (("name", name), ("skills", skills),
                                                                ("groups", groups)) if v is not None}
        return self._call("PATCH", f"/api/v1/agents/{login}", json=body)

    def delete_agent(self, login: str) -> None:
        """Delete a logged-out agent (Conflict while it is logged in); its tokens are revoked."""
        return self._call("DELETE", f"/api/v1/agents/{login}")

    def force_logoff(self, login: str, reason: str = "supervisor") -> dict:
        return self._call("POST", f"/api/v1/agents/{login}/force-logoff", json={"reason": reason})

    def move_agent(self, login: str, job_id: int | None) -> dict:
        """Pin the agent to a running job (None: unpin it), now or after its call."""
        return self._call("POST", f"/api/v1/agents/{login}/move", json={"job_id": job_id})

    def licenses(self) -> dict:
        return self._call("GET", "/api/v1/licenses")

    def job_agents(self, job_id: int, after: int = 0, limit: int = 1000) -> dict:
        """A running agent-based job's limits and grant, and one page of its agents (`members`)."""
        return self._call("GET", f"/api/v1/jobs/{job_id}/agents", params={"after": after, "limit": limit})

    def set_job_agents(self, job_id: int, **limits) -> dict:
        """Any of `min`, `max` (None lifts it) and `priority` of a running agent-based job."""
        return self._call("PUT", f"/api/v1/jobs/{job_id}/agents", json=limits)

    # -- filter templates (docs/api.md, "Filter templates") --
    def filters(self, name: str | None = None) -> list[dict]:
        """Every filter template (all pages), or the one named `name`."""
        return self._collect("/api/v1/filters", _given(name=name))

    def filter(self, filter_id: int) -> dict:
        return self._call("GET", f"/api/v1/filters/{filter_id}")

    def create_filter(self, name: str, expression: str, description: str = "") -> dict:
        return self._call("POST", "/api/v1/filters",
                          json={"name": name, "expression": expression, "description": description})

    def update_filter(self, filter_id: int, **changes) -> dict:
        """Any of `expression`, `name`, `description`."""
        return self._call("PUT", f"/api/v1/filters/{filter_id}", json=changes)

    def delete_filter(self, filter_id: int) -> None:
        return self._call("DELETE", f"/api/v1/filters/{filter_id}")

    def preview_list(self, list_id: int, expression: str, sample: int = 10) -> dict:
        """`{"count", "sample"}`: the list's contacts the expression selects now."""
        return self._call("POST", f"/api/v1/lists/{list_id}/preview", json={"expression": expression, "sample": sample})

    # -- load and alarms (docs/api.md, "Load and alarms") --
    def alarms(self, state: str = "all", limit: int = 100, before: int | None = None) -> list[dict]:
        """One page of alarms (`active`, `cleared` or `all`), newest first: at most `limit`
        (1-1000), with an id below `before` if given. Every one: `pages("/api/v1/alarms",
        {"state": state})` (or `all_alarms`)."""
        return self._call("GET", "/api/v1/alarms", params=_given(state=state, limit=limit, before=before))

    def all_alarms(self, state: str = "all") -> list[dict]:
        """Every alarm in `state` (all pages), newest first."""
        return self._collect("/api/v1/alarms", {"state": state})

    def load(self) -> dict:
        return self._call("GET", "/api/v1/load")

    def load_config(self) -> dict:
        return self._call("GET", "/api/v1/load/config")

    def set_load_config(self, config: dict) -> dict:
        """Replace the load monitor's thresholds (admin); left-out fields take the defaults."""
        return self._call("PUT", "/api/v1/load/config", json=config)

    def metrics(self) -> str:
        """The Prometheus exposition text of `GET /metrics`."""
        return self._call("GET", "/metrics", as_text=True)


PAGE = 1000                     # items per page asked for: the gateway's most (api/pages.py)


class PomClient(Routes):
    """The synchronous client. `url`: default `$POM_URL`, else `http://127.0.0.1:$POM_HTTP_PORT`.
    `token`: an API token; default `$POM_TOKEN`, else the admin token `pom run` wrote to
    `$POM_DATA_DIR/admin-token` (`.pom-data/admin-token`), else none (every route but
    `/health` then answers 401). `transport`: an httpx transport to send through (tests)."""

    def __init__(self, url: str | None = None, timeout: float = 30.0, token: str | None = None,
                 transport: httpx.BaseTransport | None = None):
        self.url = _base_url(url)
        self.http = httpx.Client(base_url=self.url, timeout=timeout, headers=_authorization(token),
                                 transport=transport)

    def __enter__(self) -> "PomClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, *, pick: str | None = None, as_text: bool = False, **kwargs) -> Any:
        return _answer(self.http.request(method, path, **kwargs), pick, as_text)

    def pages(self, path: str, params: dict | None = None, limit: int = PAGE) -> Iterator[dict]:
        """Every item of a paged list route (`/api/v1/jobs`, `/campaigns`, `/rules`; `/alarms`
        newest first), page by page, following the `Link: rel="next"` header (docs/api.md, "Pages")."""
        url, query = path, {**(params or {}), "limit": limit}
        while url:
            response = self.http.get(url, params=query)
            yield from _answer(response)
            url, query = _next_page(response), None

    def _collect(self, path: str, params: dict | None = None) -> list[dict]:
        return list(self.pages(path, params))

    def _upload(self, path: str, file: str, progress: Callable[[int, int], None] | None, **kwargs) -> Any:
        with open(file, "rb") as f:
            return self._call("POST", path, files=_file_field(file, f, progress), **kwargs)

    def wait_until_done(self, job: int | dict, progress: Callable[[dict], None] | None = None,
                        timeout: float | None = None, interval: float = 1.0) -> dict:
        """Reads the job every `interval` s until it has ended (completed, stopped or failed) and
        returns it as last read; `progress(job)` is called with each reading (its `state`,
        `work_items`, `total`). WaitTimeout after `timeout` s (the job goes on)."""
        watch = _Watch(job, progress, timeout, interval)
        while (pause := watch.after(self.job(watch.job_id))) is not None:
            time.sleep(pause)
        return watch.last


class AsyncPomClient(Routes):
    """The asynchronous client, over `httpx.AsyncClient`: every method of `Routes` (those of
    `PomClient`) returns a coroutine of the same answer; `pages` is an async iterator. The
    arguments of `PomClient`; use `async with AsyncPomClient() as pom:` or `await pom.aclose()`.
    A file upload reads the file in the event loop's thread (local files only)."""

    def __init__(self, url: str | None = None, timeout: float = 30.0, token: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.url = _base_url(url)
        self.http = httpx.AsyncClient(base_url=self.url, timeout=timeout, headers=_authorization(token),
                                      transport=transport)

    async def __aenter__(self) -> "AsyncPomClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _call(self, method: str, path: str, *, pick: str | None = None, as_text: bool = False,
                    **kwargs) -> Any:
        return _answer(await self.http.request(method, path, **kwargs), pick, as_text)

    async def pages(self, path: str, params: dict | None = None, limit: int = PAGE) -> AsyncIterator[dict]:
        """`PomClient.pages`, as an async iterator (`async for job in pom.pages("/api/v1/jobs")`)."""
        url, query = path, {**(params or {}), "limit": limit}
        while url:
            response = await self.http.get(url, params=query)
            for item in _answer(response):
                yield item
            url, query = _next_page(response), None

    async def _collect(self, path: str, params: dict | None = None) -> list[dict]:
        return [item async for item in self.pages(path, params)]

    async def _upload(self, path: str, file: str, progress: Callable[[int, int], None] | None, **kwargs) -> Any:
        with open(file, "rb") as f:
            return await self._call("POST", path, files=_file_field(file, f, progress), **kwargs)

    async def wait_until_done(self, job: int | dict, progress: Callable[[dict], None] | None = None,
                              timeout: float | None = None, interval: float = 1.0) -> dict:
        """`PomClient.wait_until_done`, sleeping without blocking the event loop."""
        watch = _Watch(job, progress, timeout, interval)
        while (pause := watch.after(await self.job(watch.job_id))) is not None:
            await asyncio.sleep(pause)
        return watch.last


class _Watch:
    """What `wait_until_done` does with each reading of the job, whichever the transport."""

    def __init__(self, job: int | dict, progress: Callable[[dict], None] | None, timeout: float | None,
                 interval: float):
        self.job_id = job["id"] if isinstance(job, dict) else int(job)
        self.progress, self.timeout, self.interval = progress, timeout, interval
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.last: dict = {}

    def after(self, job: dict) -> float | None:
        """None once `job` has ended, else the seconds to wait before the next reading;
        WaitTimeout past the deadline."""
        self.last = job
        if self.progress:
            self.progress(job)
        if job["state"] in TERMINAL:
            return None
        if self.deadline is None:
            return self.interval
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(job, self.timeout)
        return min(self.interval, left)


def _answer(response: httpx.Response, pick: str | None = None, as_text: bool = False) -> Any:
    """The body of an answer (see `Routes._call`); `/health` answers 503 with its body too."""
    status = response.status_code
    if status >= 400 and not (status == 503 and response.request.url.path.endswith("/health")):
        raise error_for(status, _decoded(response))
    if as_text:
        return response.text
    body = None if status == 204 or not response.content else _decoded(response)
    return body[pick] if pick else body


def _decoded(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"detail": response.text}


def _next_page(response: httpx.Response) -> str | None:
    return response.links.get("next", {}).get("url")


def _base_url(url: str | None) -> str:
    return (url or os.environ.get("POM_URL") or
            f"http://127.0.0.1:{os.environ.get('POM_HTTP_PORT', '8080')}").rstrip("/")


def _authorization(token: str | None) -> dict[str, str] | None:
    token = token or find_token()
    return {"Authorization": f"Bearer {token}"} if token else None


def _file_field(path: str, f: BinaryIO, progress: Callable[[int, int], None] | None) -> dict:
    return {"file": (os.path.basename(path), _Progress(f, progress) if progress else f, "text/csv")}


def _given(**params) -> dict[str, Any]:
    """The query parameters given (None: left out)."""
    return {k: v for k, v in params.items() if v is not None}


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
