"""Rules of deciding a review item.

`apply-ehr-value` sets the item's elements of the case's resource to the sender's values and
applies that through the domain rules, with the person deciding as the actor, the same path an
EHR's merged edit takes (`service.push.remote_edits.apply_elements` -> `apply_update`): the case
history names them and the case is re-projected and pushed. If the rules still refuse, the
decision is refused (422, with the reason) and the item stays open. `keep-case-value` and
`dismissed` change nothing in the case; the decision is recorded on the item and in the case's
history. The decision and its change commit together, in the request's unit of work.
"""

from __future__ import annotations

from service.auth.deps import Actor
from service.cases.models import CaseEvent
from service.db.base import utcnow
from service.db.unit_of_work import UnitOfWork
from service.errors import CaseBridgeError, Conflict, NotFound, UnprocessableEntity
from service.fhir_engine.updates import UPDATABLE
from service.fhir_store import repository as fhir_store
from service.links.repository import resource_link
from service.push.remote_edits import UnmappedReference, apply_elements, case_references_to_local
from service.review import repository
from service.review.models import ReviewDecision, ReviewItem, ReviewStatus
from service.review.schemas import ReviewDecisionIn


async def load_review_item(
    session: UnitOfWork, item_id: str, *, for_update: bool = False
) -> ReviewItem:
    item = await repository.get_review_item(session, item_id, for_update=for_update)
    if item is None:
        raise NotFound(f"no review item {item_id}")
    return item


async def decide(
    session: UnitOfWork, actor: Actor, item_id: str, body: ReviewDecisionIn
) -> ReviewItem:
    item = await load_review_item(session, item_id, for_update=True)
    if item.status is not ReviewStatus.open:
        raise Conflict(f"review item {item_id} is decided already ({item.decision})")
    decision = ReviewDecision(body.decision)
    if decision is ReviewDecision.apply_ehr_value:
        await _apply_ehr_value(session, actor, item)
    elif item.case_id is not None:
        # Nothing in the case changes; its history still says who decided what.
        session.add(
            CaseEvent(
                case_id=item.case_id,
                actor=actor.id,
                action="review",
                entity="review_item",
                entity_id=item.id,
                changes={"decision": [None, decision.value], "elements": [None, item.elements]},
            )
        )
    item.status = ReviewStatus.resolved
    item.decision = decision
    item.decided_by = actor.id
    item.decided_at = utcnow()
    item.note = body.note
    await session.flush()
    return item


async def _apply_ehr_value(session: UnitOfWork, actor: Actor, item: ReviewItem) -> None:
    """The sender's values of the item's elements, applied to the case's resource now."""
    if item.resource_type not in UPDATABLE or item.local_id is None:
        raise UnprocessableEntity(
            f"a {item.resource_type} of this item is not one the case takes from the sender; "
            "keep the case's value or dismiss the item"
        )
    stored = await fhir_store.latest(session, item.resource_type, item.local_id)
    if stored is None or stored.deleted:
        raise UnprocessableEntity("the case no longer has this resource: dismiss the item")
    # The sender's values are in its own form (its references): map them to the case's.
    to_local = None
    if item.connection_id is not None and item.case_id is not None:
        to_local = await case_references_to_local(session, item.connection_id, item.case_id)
        if to_local is None:
            raise UnprocessableEntity(
                "the case's patient is no longer linked to that connection: its references "
                "cannot be mapped"
            )
    try:
        await apply_elements(
            session, actor, stored, stored.version_id, item.elements, item.ehr_value, to_local
        )
    except (CaseBridgeError, UnmappedReference) as exc:
        raise UnprocessableEntity(
            f"the case still cannot take the sender's value: {exc}",
            extra={"elements": item.elements},
        ) from exc
    if item.connection_id is not None:
        # The case has the EHR's values now: they are no longer EHR edits the case lacks.
        link = await resource_link(session, item.connection_id, item.resource_type, item.local_id)
        if link is not None and link.remote_edits:
            remaining = [e for e in link.remote_edits if e not in item.elements]
            link.remote_edits = remaining or None
