"""Test doubles shared by the EHR and SMART tests: a fake DNS, a sleep that only records."""

from __future__ import annotations

from service.ehr.url_policy import UrlPolicy

BASE = "https://ehr.example.com/fhir"
PUBLIC_ADDRESS = "93.184.216.34"


async def resolve_to_public_address(host: str, port: int) -> list[str]:
    return [PUBLIC_ADDRESS]


def public_dns_policy() -> UrlPolicy:
    """The production policy (https only, public addresses only) with DNS faked as public."""
    return UrlPolicy(resolver=resolve_to_public_address)


class RecordedSleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
