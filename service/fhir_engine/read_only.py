"""The types `/fhir` serves for reading only, and the refusal a client's write of one gets:
the reason, in the status its interaction gives (FHIR R4 http.html). `creates`, `updates`,
`patches` and `deletes` raise it through the one function of their interaction."""

from __future__ import annotations

from service.errors import CaseBridgeError, MethodNotAllowed, UnprocessableEntity

READ_ONLY: dict[str, str] = {
    "Provenance": "a Provenance is the history of the records it names, written with each change",
    "Practitioner": (
        "a Practitioner is this service's record of one of its users, projected into the cases "
        "that name them; it is set through /api/admin/practitioners"
    ),
    "Organization": "the Organization is this service itself, named by the cases it keeps",
}


def refuse_create(resource_type: str) -> None:
    """A create of a read-only type: 422 (R4 http.html#create: the resource "violated ...
    server business rules"), naming the type. Nothing for any other type."""
    if why := READ_ONLY.get(resource_type):
        raise _refusal(UnprocessableEntity, resource_type, "created", why, expression=True)


def refuse_update(resource_type: str) -> None:
    """An update or a patch of a read-only type: 422 (R4 http.html#update, #patch), naming
    the type. Nothing for any other type."""
    if why := READ_ONLY.get(resource_type):
        raise _refusal(UnprocessableEntity, resource_type, "updated", why, expression=True)


def refuse_delete(resource_type: str, *, otherwise: str | None = None) -> None:
    """A delete of a read-only type: 405 (R4 http.html#delete, a server that "refuses to
    delete resources of that type on principle"). For any other type, the same refusal with
    `otherwise` as its reason when one is given (a type `deletes` never deletes), else nothing."""
    if why := READ_ONLY.get(resource_type, otherwise):
        raise _refusal(MethodNotAllowed, resource_type, "deleted", why, expression=False)


def _refusal(
    error: type[CaseBridgeError], resource_type: str, verb: str, why: str, *, expression: bool
) -> CaseBridgeError:
    extra = {"expression": [resource_type]} if expression else None
    return error(f"a {resource_type} is not {verb} here: {why}", extra=extra)
