"""Who acts reaches the EHR as a resource, not as an API key's name (issue 16, problem 8):
against sekmet-fhir on loopback, a referral made by someone with an NPI names a Practitioner
sekmet holds (created once, by conditional create on the NPI, however often cases are pushed),
and one made by an API key with no person names the service's Organization."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from mappings.canonical import IDENTIFIER_SYSTEM, NPI_SYSTEM
from service.db.session import Database
from service.push.dispatcher import PushDispatcher
from tests.api.case_factory import ok
from tests.push.conftest import Ehr
from tests.push.linked_cases import linked_case

pytestmark = pytest.mark.integration

NPI = "1234567893"  # CMS's example NPI: its check digit is right


async def pushed_referral(
    client: httpx.AsyncClient, database: Database, ehr: Ehr, dispatcher: PushDispatcher
) -> dict[str, Any]:
    case, remote_patient = await linked_case(client, database, ehr.fhir, ehr.connection_id)
    await dispatcher.run_until_idle()
    [status] = ok(await client.get("/api/push/status", params={"case_id": case["id"]}))
    assert status["status"] == "synced", status["last_error"]
    assert "Practitioner" not in status["unsupported"]
    assert "Organization" not in status["unsupported"]
    [referral] = [r async for r in ehr.fhir.search("ServiceRequest", [("subject", remote_patient)])]
    return referral


async def by_identifier(ehr: Ehr, resource_type: str, system: str, value: str) -> list[Any]:
    return [r async for r in ehr.fhir.search(resource_type, [("identifier", f"{system}|{value}")])]


async def test_a_referral_by_someone_with_an_npi_names_their_practitioner_on_the_ehr(
    client: httpx.AsyncClient, database: Database, ehr: Ehr, dispatcher: PushDispatcher
) -> None:
    # The tests' client acts as the bootstrap key; an admin says who that is.
    ok(
        await client.put(
            "/api/admin/practitioners/apikey:bootstrap",
            json={"family_name": "Lee", "given_names": ["Ana"], "npi": NPI},
        )
    )
    referral = await pushed_referral(client, database, ehr, dispatcher)

    [practitioner] = await by_identifier(ehr, "Practitioner", NPI_SYSTEM, NPI)
    assert practitioner["name"][0]["family"] == "Lee"
    assert referral["requester"]["reference"] == f"Practitioner/{practitioner['id']}"
    assert referral["requester"]["display"] == "Ana Lee"
    assert "apikey" not in str(referral)

    # A second case by the same person, pushed too: still one Practitioner, named by both.
    second = await pushed_referral(client, database, ehr, dispatcher)
    assert second["requester"]["reference"] == f"Practitioner/{practitioner['id']}"
    assert len(await by_identifier(ehr, "Practitioner", NPI_SYSTEM, NPI)) == 1


async def test_a_referral_by_an_api_key_with_no_person_names_the_service_organization(
    client: httpx.AsyncClient, database: Database, ehr: Ehr, dispatcher: PushDispatcher
) -> None:
    referral = await pushed_referral(client, database, ehr, dispatcher)

    [organization] = await by_identifier(
        ehr, "Organization", IDENTIFIER_SYSTEM["Organization"], "casebridge"
    )
    assert organization["name"] == "CaseBridge"
    assert referral["requester"]["reference"] == f"Organization/{organization['id']}"
    assert "apikey" not in str(referral)
