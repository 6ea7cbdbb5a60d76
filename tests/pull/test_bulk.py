"""Bulk Data export against respx: the kick-off, polling that honours Retry-After and reports
X-Progress, and NDJSON read line by line with bad lines reported."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest
import respx

from mappings import fhir_json
from service.ehr.client import FhirClient
from service.ehr.errors import EhrProtocolError, EhrTimeout
from service.pull.bulk import BadLine, BulkExport, OutputFile
from tests.ehr.fakes import BASE, RecordedSleeps, public_dns_policy

STATUS = f"{BASE}/bulk-status/42"
FILES = "https://files.ehr.example.com/exports/42"


class FakeTokens:
    async def access_token(self) -> str:
        return "tok"

    async def reauthenticate(self, rejected_token: str) -> str:
        return "tok"


@pytest.fixture
def ehr() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True) as router:
        yield router


@pytest.fixture
def sleeps() -> RecordedSleeps:
    return RecordedSleeps()


@pytest.fixture
def export(sleeps: RecordedSleeps) -> BulkExport:
    client = FhirClient(BASE, policy=public_dns_policy(), sleep=sleeps)
    return BulkExport(client, public_dns_policy(), token_provider=FakeTokens(), sleep=sleeps)


async def test_the_kick_off_asks_for_the_types_since_the_cursor(
    ehr: respx.MockRouter, export: BulkExport
) -> None:
    route = ehr.get(f"{BASE}/Group/g1/$export").respond(
        202, headers={"Content-Location": "/fhir/bulk-status/42"}
    )
    since = dt.datetime(2026, 11, 1, 8, 30, tzinfo=dt.UTC)
    status_url = await export.kick_off("g1", ["Patient", "Condition"], since)
    assert status_url == STATUS
    request = route.calls.last.request
    assert request.headers["Prefer"] == "respond-async"
    assert request.url.params["_type"] == "Patient,Condition"
    assert request.url.params["_since"] == "2026-11-01T08:30:00.000Z"


async def test_polling_honours_retry_after_and_reports_progress(
    ehr: respx.MockRouter, export: BulkExport, sleeps: RecordedSleeps
) -> None:
    ehr.get(STATUS).mock(
        side_effect=[
            httpx.Response(202, headers={"X-Progress": "10% done", "Retry-After": "3"}),
            httpx.Response(202, headers={"X-Progress": "60% done"}),  # no Retry-After
            httpx.Response(
                200,
                json={
                    "transactionTime": "2026-12-01T10:00:00.000Z",
                    "requiresAccessToken": True,
                    "output": [{"type": "Patient", "url": f"{FILES}/Patient.ndjson", "count": 2}],
                    "error": [],
                },
            ),
        ]
    )
    notes: list[str | None] = []

    async def progress(note: str | None) -> None:
        notes.append(note)

    manifest = await export.wait(STATUS, progress)
    assert notes == ["10% done", "60% done"]
    assert sleeps.delays == [3.0, 2.0]
    assert manifest.transaction_time == dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC)
    assert manifest.requires_access_token
    assert manifest.output == [OutputFile("Patient", f"{FILES}/Patient.ndjson", 2)]


async def test_polling_gives_up_at_the_deadline(ehr: respx.MockRouter, export: BulkExport) -> None:
    ehr.get(STATUS).respond(202, headers={"Retry-After": "120"})

    async def progress(note: str | None) -> None:
        return None

    with pytest.raises(EhrTimeout):
        await export.wait(STATUS, progress, deadline_seconds=60)


@pytest.mark.parametrize("requires_token", [True, False])
async def test_ndjson_is_read_line_by_line_and_bad_lines_are_reported(
    ehr: respx.MockRouter, export: BulkExport, requires_token: bool
) -> None:
    body = (
        b'{"resourceType":"Patient","id":"p1"}\n'
        b"\n"
        b"{not json\n"
        b'{"resourceType":"Condition","id":"c1"}\n'
        b'{"resourceType":"Patient","id":"p2"}'  # no final newline
    )
    # A file that needs the token is on the FHIR server's origin; one that does not may be
    # anywhere the URL policy allows.
    where = f"{BASE}/exports/42" if requires_token else FILES
    route = ehr.get(f"{where}/Patient.ndjson").respond(200, content=body)
    bad: list[BadLine] = []
    file = OutputFile("Patient", f"{where}/Patient.ndjson", None)
    ids = [r["id"] async for r in export.resources(file, requires_token, bad)]
    assert ids == ["p1", "p2"]
    assert [b.line_number for b in bad] == [3, 4]
    assert "not JSON" in bad[0].reason
    assert bad[1].reason == "a 'Condition' in a Patient file"
    sent = route.calls.last.request.headers
    assert (sent.get("Authorization") == "Bearer tok") is requires_token


async def test_ndjson_decimals_keep_their_digits(ehr: respx.MockRouter, export: BulkExport) -> None:
    """FHIR R4 §2.24.0.1: `1.50` in an export line is `1.50` when stored, not `1.5`."""
    line = b'{"resourceType":"Observation","id":"o1","valueQuantity":{"value":1.50}}\n'
    ehr.get(f"{FILES}/Observation.ndjson").respond(200, content=line)
    file = OutputFile("Observation", f"{FILES}/Observation.ndjson", None)
    [resource] = [r async for r in export.resources(file, False, [])]
    assert fhir_json.dumps(resource) == line.strip()


async def test_the_access_token_never_leaves_the_fhir_servers_origin(
    ehr: respx.MockRouter, export: BulkExport
) -> None:
    ehr.get(f"{BASE}/Group/g1/$export").respond(
        202, headers={"Content-Location": "https://collector.example.net/status/1"}
    )
    with pytest.raises(EhrProtocolError, match="another origin"):
        await export.kick_off("g1", ["Patient"], None)
    foreign = OutputFile("Patient", f"{FILES}/Patient.ndjson", None)
    with pytest.raises(EhrProtocolError, match="another origin"):
        [r async for r in export.resources(foreign, True, [])]
    # respx would have recorded any request to the foreign hosts (none is mocked).
    assert [call.request.url.host for call in ehr.calls] == ["ehr.example.com"]
