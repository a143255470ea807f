"""Python client of the POM gateway: what the CLI uses, and what integrators script with."""
from __future__ import annotations

import os
from typing import Any

import httpx


class PomError(RuntimeError):
    """An HTTP error from the gateway, with its JSON body (`error`, `errors`, `message`...)."""

    def __init__(self, status: int, body: Any):
        self.status, self.body = status, body
        detail = body.get("message") or body.get("errors") or body.get("detail") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {detail}")


class PomClient:
    def __init__(self, url: str | None = None, timeout: float = 30.0):
        self.url = (url or os.environ.get("POM_URL") or
                    f"http://127.0.0.1:{os.environ.get('POM_HTTP_PORT', '8080')}").rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=timeout)

    def _call(self, method: str, path: str, **kwargs) -> Any:
        response = self.http.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text}
        if response.status_code >= 400 and not (path == "/health" and response.status_code == 503):
            raise PomError(response.status_code, body)
        return body

    def health(self) -> dict:
        return self._call("GET", "/health")

    def jobs(self, state: str | None = None) -> list[dict]:
        return self._call("GET", "/api/v1/jobs", params={"state": state} if state else None)

    def job(self, job_id: int) -> dict:
        return self._call("GET", f"/api/v1/jobs/{job_id}")

    def create_job(self, campaign: int | str, start: bool = True) -> dict:
        return self._call("POST", "/api/v1/jobs", json={"campaign": campaign, "start": start})

    def command(self, job_id: int, action: str) -> dict:
        return self._call("POST", f"/api/v1/jobs/{job_id}/{action}")

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
