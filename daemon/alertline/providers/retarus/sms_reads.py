"""The read side of Retarus SMS REST v1: reports and job lists from the status data centres.

Job data lives only in the data centre that accepted the job (PROVIDERS.md A), so every read asks
the configured status URLs in order (de2, then de1): a 404 or a persisting 5xx there means "ask
the next". Seed: retarus-sms-rest-v1.txt (``GET /sms``, ``GET /jobs``, ``GET /jobs/{jobId}``,
``GET /version``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx

from alertline.errors import ProviderAnswerError, TransientError
from alertline.providers._http import HttpApi, json_object
from alertline.providers.retarus import sms_wire as wire


class StatusReader:
    """Reads of one account over its status data centres, through one shared :class:`HttpApi`."""

    def __init__(self, provider: str, api: HttpApi, urls: list[str]) -> None:
        self.provider = provider
        self.urls = urls
        self._api = api

    async def read_first(self, path: str, params: dict[str, Any] | None,
                         urls: list[str] | None = None) -> httpx.Response | None:
        """GET ``path`` from the data centres in order; None if none knows it (404 everywhere).

        ``GET /sms`` may answer 201 "Send job successful" with no content: the job is known,
        its recipients have no report yet (:meth:`recipients` reads it as none).
        """
        last_error: TransientError | None = None
        for url in urls or self.urls:
            try:
                response = await self._api.request(
                    "GET", f"{url.rstrip('/')}/{path}", params=params, expected=(200, 201, 404))
            except TransientError as err:
                last_error = err
                continue
            if response.status_code in (200, 201):
                return response
        if last_error is not None:
            raise last_error
        return None

    def json(self, response: httpx.Response) -> Any:
        """The answer's JSON, or :class:`ProviderAnswerError`."""
        try:
            return response.json()
        except ValueError:
            raise ProviderAnswerError(self.provider, "answer is not JSON") from None

    def recipients(self, response: httpx.Response) -> list[wire.RecipientReport]:
        """The recipient reports of a ``GET /sms`` answer (none yet for a 201 without content)."""
        if response.status_code == 201 and not response.content.strip():
            return []  # "Send job successful", no content: no report yet, not an error
        data = self.json(response)
        if not isinstance(data, list | dict):
            raise ProviderAnswerError(self.provider, "recipient report is not a JSON array")
        return wire.parse_recipient_reports(data)

    async def recipient_reports(self, job_id: str, urls: list[str] | None = None
                                ) -> list[wire.RecipientReport] | None:
        """``GET /sms?jobId=``: per-recipient reports; None if no data centre knows the job."""
        response = await self.read_first("sms", {"jobId": job_id}, urls)
        return None if response is None else self.recipients(response)

    async def job_report(self, job_id: str) -> wire.JobReport | None:
        """``GET /jobs/{jobId}``: the job report; None if no data centre knows the job."""
        response = await self.read_first(f"jobs/{job_id}", None)
        return None if response is None else wire.JobReport.from_json(
            json_object(self.provider, response))

    async def list_entries(self, from_ts: datetime, to_ts: datetime, open: bool | None,
                           *, limit: int, offset: int,
                           urls: list[str]) -> dict[str, str | None]:
        """One page of ``GET /jobs`` from each of ``urls``: job id -> customerRef if listed."""
        params: dict[str, Any] = {"fromTs": wire.iso_ms(from_ts), "toTs": wire.iso_ms(to_ts),
                                  "jobIdsOnly": "true", "limit": limit, "offset": offset}
        if open is not None:
            params["open"] = "true" if open else "false"
        entries: dict[str, str | None] = {}
        for url in urls:
            response = await self.read_first("jobs", params, [url])
            if response is not None:
                entries.update(wire.parse_job_entries(self.json(response)))
        return entries

    async def all_pages(self, since: datetime, until: datetime, url: str
                        ) -> AsyncIterator[tuple[str, str | None]]:
        """Every (job id, listed customerRef) one data centre has in [since, until], page by
        page of the documented maximum of 1,000."""
        offset = 0
        while True:
            entries = await self.list_entries(since, until, None, limit=wire.LIST_LIMIT_MAX,
                                              offset=offset, urls=[url])
            for entry in entries.items():
                yield entry
            if len(entries) < wire.LIST_LIMIT_MAX:
                return
            offset += wire.LIST_LIMIT_MAX

    async def version(self) -> dict[str, Any]:
        """``GET /version``: the service's version information."""
        response = await self.read_first("version", None)
        if response is None:
            raise ProviderAnswerError(self.provider, "no data centre answers /version")
        return json_object(self.provider, response)
