"""The types `/fhir` serves for reading only, and why a client's write of one is refused
(by `creates`, `updates` and `deletes`, each with the status its interaction gives)."""

from __future__ import annotations

READ_ONLY: dict[str, str] = {
    "Provenance": "a Provenance is the history of the records it names, written with each change",
    "Practitioner": (
        "a Practitioner is this service's record of one of its users, projected into the cases "
        "that name them; it is set through /api/admin/practitioners"
    ),
    "Organization": "the Organization is this service itself, named by the cases it keeps",
}


def read_only_reason(resource_type: str) -> str | None:
    """Why a write of `resource_type` is refused, if the type is served for reading only."""
    return READ_ONLY.get(resource_type)
