"""The people a case names, served for reading on `/fhir`: the Practitioner a user is (set
through `/api/admin/practitioners`) and the service's Organization. A client following a
case's `requester`, `author` or `expressedBy` reference reads them, searches them by
identifier and name, `_include`s them, and is refused, with the reason, when it writes them."""

from __future__ import annotations

import httpx
import orjson

from mappings.to_fhir.people import practitioner_id
from tests.api.case_factory import ok
from tests.fhir_api.conftest import SetScopes, planned_case

ACTOR = "apikey:bootstrap"  # the tests' client
NPI = "1234567893"


async def test_a_referral_s_requester_is_read_searched_and_included(
    client: httpx.AsyncClient, fhir: httpx.AsyncClient, scopes: SetScopes
) -> None:
    body = {"family_name": "Lee", "given_names": ["Ana"], "npi": NPI}
    ok(await client.put(f"/api/admin/practitioners/{ACTOR}", json=body))
    await planned_case(client)
    [referral] = ok(await fhir.get("/ServiceRequest"))["entry"]
    requester = referral["resource"]["requester"]["reference"]
    assert requester == f"Practitioner/{practitioner_id(ACTOR)}"

    practitioner = ok(await fhir.get(f"/{requester}"))
    assert practitioner["name"][0]["family"] == "Lee"
    assert ok(await fhir.get(f"/{requester}/_history/1"))["id"] == practitioner["id"]

    for query in (f"identifier=http://hl7.org/fhir/sid/us-npi|{NPI}", "name=lee", "family=Lee"):
        found = ok(await fhir.get(f"/Practitioner?{query}"))
        assert [e["resource"]["id"] for e in found["entry"]] == [practitioner["id"]], query
    assert ok(await fhir.get("/Practitioner?name=nobody"))["total"] == 0

    included = ok(await fhir.get("/ServiceRequest?_include=ServiceRequest:requester"))
    modes = {e["resource"]["resourceType"]: e["search"]["mode"] for e in included["entry"]}
    assert modes == {"ServiceRequest": "match", "Practitioner": "include"}

    # A token confined to a patient reads that patient's records, not the service's people.
    patient = referral["resource"]["subject"]["reference"].split("/")[1]
    scopes("patient/*.rs", patient=patient)
    assert (await fhir.get(f"/{requester}")).status_code == 403


async def test_the_service_organization_is_read_and_searched_by_name(
    client: httpx.AsyncClient, fhir: httpx.AsyncClient, scopes: SetScopes
) -> None:
    await planned_case(client)  # no identity set: the service's Organization requests
    [referral] = ok(await fhir.get("/ServiceRequest"))["entry"]
    requester = referral["resource"]["requester"]["reference"]
    assert requester.startswith("Organization/")
    organization = ok(await fhir.get(f"/{requester}"))
    name = organization["name"]
    found = ok(await fhir.get("/Organization", params={"name": name.split()[0]}))
    assert [e["resource"]["id"] for e in found["entry"]] == [organization["id"]]


async def test_writing_the_people_is_refused_with_the_reason(
    client: httpx.AsyncClient, fhir: httpx.AsyncClient, scopes: SetScopes
) -> None:
    ok(await client.put(f"/api/admin/practitioners/{ACTOR}", json={"family_name": "Lee"}))
    await planned_case(client)
    url = f"/Practitioner/{practitioner_id(ACTOR)}"
    practitioner = ok(await fhir.get(url))
    answers = [
        await fhir.post("/Practitioner", json={"resourceType": "Practitioner"}),
        await fhir.put(url, json=practitioner | {"active": False}),
        await fhir.delete(url),
    ]
    assert [a.status_code for a in answers] == [422, 422, 405]
    for answer in answers:
        assert "/api/admin/practitioners" in answer.json()["issue"][0]["diagnostics"]
    assert ok(await fhir.get(url))["meta"]["versionId"] == practitioner["meta"]["versionId"]

    statement = ok(await fhir.get("/metadata"))
    [served] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Practitioner"]
    assert {i["code"] for i in served["interaction"]} == {
        "read",
        "vread",
        "history-instance",
        "history-type",
        "search-type",
    }
    assert {p["name"] for p in served["searchParam"]} >= {"identifier", "name"}


async def test_a_removed_identity_is_no_longer_served(
    client: httpx.AsyncClient, fhir: httpx.AsyncClient, scopes: SetScopes
) -> None:
    """The Practitioner is stored apart from any case: removing the identity deletes it (410,
    out of searches), rather than leaving a current clinician nobody is any more."""
    ok(await client.put(f"/api/admin/practitioners/{ACTOR}", json={"family_name": "Lee"}))
    await planned_case(client)
    url = f"/Practitioner/{practitioner_id(ACTOR)}"
    assert ok(await fhir.get(url))["name"][0]["family"] == "Lee"
    ok(await client.delete(f"/api/admin/practitioners/{ACTOR}"))
    assert (await fhir.get(url)).status_code == 410
    assert ok(await fhir.get("/Practitioner?name=lee"))["total"] == 0
    assert ok(await fhir.get(f"{url}/_history/1"))["name"][0]["family"] == "Lee"
    # Set again, it is served again, as its next version.
    ok(await client.put(f"/api/admin/practitioners/{ACTOR}", json={"family_name": "Lee"}))
    assert ok(await fhir.get(url))["meta"]["versionId"] == "3"


async def test_a_patch_of_a_practitioner_gets_the_read_only_reason_first(
    client: httpx.AsyncClient, fhir: httpx.AsyncClient, scopes: SetScopes
) -> None:
    ok(await client.put(f"/api/admin/practitioners/{ACTOR}", json={"family_name": "Lee"}))
    await planned_case(client)
    scopes("system/*.rs")  # not even allowed to update: the reason still comes first
    patch = [{"op": "replace", "path": "/active", "value": False}]
    answer = await fhir.patch(
        f"/Practitioner/{practitioner_id(ACTOR)}",
        content=orjson.dumps(patch),
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert answer.status_code == 422
    assert "/api/admin/practitioners" in answer.json()["issue"][0]["diagnostics"]
