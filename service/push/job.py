"""What one push of a (case, connection) pair works from, read in the transaction that claims
the pair, and the upsert that records its results (ResourceLinks): an ordered push records
each confirmed write at once, in its own short transaction, so that a worker killed mid-push
leaves every confirmed write recorded; a transaction Bundle's links are recorded with the
push's finish (see service.push.writes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, exists, literal, select
from sqlalchemy.dialects import postgresql, sqlite

from mappings import fhir_json
from mappings.to_fhir.people import PEOPLE_TYPES
from mappings.to_fhir.plan_document import plan_document, plan_document_id
from service.cases.models import Case
from service.connections.models import Connection
from service.db.base import new_id, utcnow
from service.fhir_store.models import ResourceVersion, StoredResource
from service.links.models import LinkOrigin, PatientLink, ResourceLink
from service.push.dialect import Executor, is_postgres
from service.push.models import ConflictStatus, PushConflict

JsonDict = dict[str, Any]
# Targets before the resources that reference them; the CarePlan references all of them.
# Who acts (Organization, Practitioner) comes first: requesters, authors and performers.
# A DocumentReference is the rendered plan, pushed instead of a CarePlan an EHR cannot write.
PUSH_ORDER = (
    "Organization",
    "Practitioner",
    "Condition",
    "Goal",
    "ServiceRequest",
    "CareTeam",
    "CarePlan",
    "DocumentReference",
)


@dataclass
class LinkState:
    remote_id: str | None
    remote_version_id: str | None
    pushed_version_id: int | None
    pushed_content: JsonDict | None
    # Elements of pushed_content that are EHR edits the case lacks (ResourceLink.remote_edits).
    remote_edits: frozenset[str] = frozenset()


@dataclass
class LocalResource:
    resource_type: str
    id: str
    version_id: int
    content: JsonDict
    link: LinkState | None
    # The local content as of the last push (for rebasing onto what the EHR has).
    content_at_push: JsonDict | None

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"

    def relink(self, state: LinkState) -> None:
        """Take the link state of a confirmed write. Which elements are EHR edits changes only
        through service.push.remote_edits, never by a write: the state keeps the link's."""
        state.remote_edits = self.link.remote_edits if self.link else frozenset()
        self.link = state

    @property
    def up_to_date(self) -> bool:
        return (
            self.link is not None
            and self.link.remote_id is not None
            and self.link.pushed_version_id == self.version_id
        )


@dataclass
class PushJob:
    case_id: str
    connection_id: str
    local_patient_id: str
    remote_patient_id: str
    manager: str | None
    resources: list[LocalResource]
    care_plan_version: int | None
    # The CarePlan as a DocumentReference, for an EHR that cannot write CarePlan.
    plan_document: LocalResource | None = None
    # Resources this push created on the EHR that the case has since withdrawn (a deleted
    # local version): (resource type, local id, remote id).
    withdrawn: list[tuple[str, str, str]] = field(default_factory=list)
    # The connection's own DocumentReference fallback setting (None: the global default).
    document_fallback: bool | None = None
    # Local ids of resources with an open conflict: they wait for its resolution.
    parked: frozenset[str] = frozenset()


class NothingToPush(Exception):
    """The pair no longer exists as a pushable thing (case or patient link gone)."""


_cases = cast(Table, Case.__table__).c
_connections = cast(Table, Connection.__table__).c
_conflicts = cast(Table, PushConflict.__table__).c
_patient_links_table = cast(Table, PatientLink.__table__)
_stored_table = cast(Table, StoredResource.__table__)
_versions_table = cast(Table, ResourceVersion.__table__)
_links_table = cast(Table, ResourceLink.__table__)
_patient_links, _stored = _patient_links_table.c, _stored_table.c
_versions, _links = _versions_table.c, _links_table.c

# A link's columns a push reads, labelled with a prefix where a row holds other things too.
_LINK_COLUMNS = (
    "id",
    "remote_id",
    "remote_version_id",
    "pushed_version_id",
    "pushed_content",
    "remote_edits",
)


def _open_conflict(case_id: Any) -> Any:
    """An open conflict of the connection's pair with `case_id` (a parameter or a column)."""
    return and_(
        _conflicts.case_id == case_id,
        _conflicts.connection_id == bindparam("connection"),
        _conflicts.status == ConflictStatus.open,
    )


# A push's reads are built once (they run for every push, on the hot path), as plain Core.
# The head and the resources are read for every case a round claims on one connection at once;
# the rarer reads (open conflicts, withdrawn resources) only for the cases flagged in the head.

# What a push created from a resource the case has since deleted: read from the case's deleted
# resources, each looking up its own link (a read from the connection's links would grow with
# every case the connection has).
_PUSHED_LINK = and_(
    _links.connection_id == bindparam("connection"),
    _links.resource_type == _stored.resource_type,
    _links.local_id == _stored.id,
    _links.origin == LinkOrigin.pushed,
)
_WITHDRAWN = select(
    _stored.resource_type,
    _stored.id.label("local_id"),
    select(_links.remote_id).where(_PUSHED_LINK).scalar_subquery().label("remote_id"),
).where(_stored.case_id == bindparam("case"), _stored.deleted.is_(True))
_PARKED = select(_conflicts.local_id).where(_open_conflict(bindparam("case")))
# The link of each plan's DocumentReference: its id is a prefix and the CarePlan's, which is
# the case's own (mappings.to_fhir.care_plan).
_DOCUMENT_ID_PREFIX = plan_document_id("")
_document_links = _links_table.alias("document_links")
_HEADS = (
    select(
        _cases.id,
        _cases.patient_id,
        _cases.manager,
        _patient_links.remote_id.label("remote_patient_id"),
        select(_connections.document_fallback)
        .where(_connections.id == bindparam("connection"))
        .scalar_subquery()
        .label("document_fallback"),
        # Flags for the rarer reads, so a common push skips them.
        exists().where(_open_conflict(_cases.id)).label("parked"),
        exists()
        .where(
            _stored.case_id == _cases.id,
            _stored.deleted.is_(True),
            exists().where(_PUSHED_LINK, _links.remote_id.is_not(None)),
        )
        .label("withdrawn"),
        *(_document_links.c[name].label(f"document_link_{name}") for name in _LINK_COLUMNS),
    )
    .outerjoin(
        _patient_links_table,
        and_(
            _patient_links.patient_id == _cases.patient_id,
            _patient_links.connection_id == bindparam("connection"),
        ),
    )
    .outerjoin(
        _document_links,
        and_(
            _document_links.c.connection_id == bindparam("connection"),
            _document_links.c.resource_type == "DocumentReference",
            _document_links.c.local_id == literal(_DOCUMENT_ID_PREFIX) + _cases.id,
        ),
    )
    .where(_cases.id.in_(bindparam("cases", expanding=True)))
    # A patient linked to the connection twice: its first link counts.
    .order_by(_cases.id, _patient_links.created_at)
)


def _current_with_links(*where: Any) -> Any:
    """Current resources with their link, if any, and the local content that link last pushed
    (the version it names): the rebase's base."""
    return (
        select(
            _stored.case_id,
            _stored.resource_type,
            _stored.id,
            _stored.version_id,
            _stored.content,
            *(_links[name].label(f"link_{name}") for name in _LINK_COLUMNS),
            _versions.content.label("content_at_push"),
        )
        .outerjoin(
            _links_table,
            and_(
                _links.connection_id == bindparam("connection"),
                _links.resource_type == _stored.resource_type,
                _links.local_id == _stored.id,
            ),
        )
        .outerjoin(
            _versions_table,
            and_(
                _versions.resource_type == _links.resource_type,
                _versions.id == _links.local_id,
                _versions.version_id == _links.pushed_version_id,
            ),
        )
        .where(_stored.deleted.is_(False), *where)
    )


_CURRENT_WITH_LINKS = _current_with_links(
    _stored.case_id.in_(bindparam("cases", expanding=True)),
    _stored.resource_type.in_(PUSH_ORDER),
)
# Who the cases' resources name (shared by every case that names them, so not by case id).
_PEOPLE_WITH_LINKS = _current_with_links(
    _stored.resource_type.in_(PEOPLE_TYPES),
    _stored.id.in_(bindparam("people", expanding=True)),
)


def _local_resource(row: Any) -> LocalResource:
    return LocalResource(
        resource_type=row.resource_type,
        id=row.id,
        version_id=row.version_id,
        content=fhir_json.loads(row.content),
        link=_link_state(row, "link_"),
        content_at_push=fhir_json.loads(row.content_at_push) if row.content_at_push else None,
    )


def named_people(content: Any) -> set[str]:
    """The `Practitioner/<id>` and `Organization/<id>` references anywhere in a resource."""
    if isinstance(content, list):
        return set().union(*(named_people(item) for item in content))
    if not isinstance(content, dict):
        return set()
    found = set().union(*(named_people(item) for item in content.values()))
    target = content.get("reference")
    if isinstance(target, str) and target.split("/")[0] in PEOPLE_TYPES:
        found.add(target)
    return found


def _link_state(row: Any, prefix: str) -> LinkState | None:
    """The LinkState in a row's link columns (labelled `prefix` + name); None: no link."""
    link = {name: row._mapping[prefix + name] for name in _LINK_COLUMNS}
    if link["id"] is None:  # the outer join found none
        return None
    return LinkState(
        remote_id=link["remote_id"],
        remote_version_id=link["remote_version_id"],
        pushed_version_id=link["pushed_version_id"],
        pushed_content=fhir_json.loads(link["pushed_content"]) if link["pushed_content"] else None,
        remote_edits=frozenset(link["remote_edits"] or ()),
    )


Pair = tuple[str, str]  # (case id, connection id)


async def load_job(session: Executor, case_id: str, connection_id: str) -> PushJob:
    """What the push of one pair works from (see `load_jobs`)."""
    job = (await load_jobs(session, [(case_id, connection_id)]))[(case_id, connection_id)]
    if isinstance(job, NothingToPush):
        raise job
    return job


async def load_jobs(
    session: Executor, pairs: Sequence[Pair]
) -> dict[Pair, PushJob | NothingToPush]:
    """What the push of each pair works from, read in two statements per connection however
    many pairs there are (plus the rarer reads for the cases that need them)."""
    by_connection: dict[str, list[str]] = {}
    for case_id, connection_id in pairs:
        by_connection.setdefault(connection_id, []).append(case_id)
    jobs: dict[Pair, PushJob | NothingToPush] = {}
    for connection_id, case_ids in by_connection.items():
        params = {"connection": connection_id, "cases": case_ids}
        heads: dict[str, Any] = {}
        for head in await session.execute(_HEADS, params):
            heads.setdefault(head.id, head)
        resources: dict[str, list[LocalResource]] = {case_id: [] for case_id in case_ids}
        for row in await session.execute(_CURRENT_WITH_LINKS, params):
            resources[row.case_id].append(_local_resource(row))
        await _add_people(session, connection_id, resources)
        for case_id in case_ids:
            jobs[(case_id, connection_id)] = await _job(
                session, connection_id, case_id, heads.get(case_id), resources[case_id]
            )
    return jobs


async def _add_people(
    session: Executor, connection_id: str, resources: dict[str, list[LocalResource]]
) -> None:
    """Add to each case's resources the Practitioners and Organization they name (one read
    for every case of the connection; none when no case names anyone)."""
    named = {
        case_id: set().union(*(named_people(r.content) for r in listed))
        for case_id, listed in resources.items()
    }
    wanted = set().union(*named.values())
    if not wanted:
        return
    params = {"connection": connection_id, "people": sorted(t.split("/")[1] for t in wanted)}
    rows = list(await session.execute(_PEOPLE_WITH_LINKS, params))
    for case_id, references in named.items():
        # Each case its own copy: a push relinks the resources it writes.
        resources[case_id] += [
            _local_resource(row) for row in rows if f"{row.resource_type}/{row.id}" in references
        ]


async def _job(
    session: Executor,
    connection_id: str,
    case_id: str,
    head: Any,
    resources: list[LocalResource],
) -> PushJob | NothingToPush:
    if head is None:
        return NothingToPush(f"case {case_id} no longer exists")
    if head.remote_patient_id is None:
        return NothingToPush(f"the patient of case {case_id} is not linked to the connection")
    resources.sort(key=lambda r: (PUSH_ORDER.index(r.resource_type), r.id))
    care_plan = next((r for r in resources if r.resource_type == "CarePlan"), None)
    document = None
    if care_plan is not None:
        document = LocalResource(
            resource_type="DocumentReference",
            id=plan_document_id(case_id),
            version_id=care_plan.version_id,
            content=plan_document(care_plan.content),
            link=_link_state(head, "document_link_"),
            content_at_push=None,
        )
    ids = {"case": case_id, "connection": connection_id}
    withdrawn = [
        (row.resource_type, row.local_id, row.remote_id)
        for row in (await session.execute(_WITHDRAWN, ids) if head.withdrawn else ())
        if row.remote_id is not None
    ]
    parked = frozenset(await session.scalars(_PARKED, ids)) if head.parked else frozenset()
    return PushJob(
        case_id=case_id,
        connection_id=connection_id,
        local_patient_id=head.patient_id,
        remote_patient_id=head.remote_patient_id,
        manager=head.manager,
        resources=resources,
        care_plan_version=care_plan.version_id if care_plan else None,
        plan_document=document,
        withdrawn=withdrawn,
        document_fallback=head.document_fallback,
        parked=parked,
    )


def _upsert_links(insert: Any) -> Any:
    """An upsert of one ResourceLink per parameter set (`insert`: the dialect's own)."""
    upsert = insert(_links_table).values(
        {name: bindparam(f"v_{name}") for name in (*_LINK_KEY, "id", "origin", *_LINK_STATE)}
    )
    return upsert.on_conflict_do_update(
        index_elements=list(_LINK_KEY),
        set_={name: upsert.excluded[name] for name in _LINK_STATE},
    )


_LINK_KEY = ("connection_id", "resource_type", "local_id")
_LINK_STATE = (
    "remote_id",
    "remote_version_id",
    "pushed_version_id",
    "pushed_content",
    "updated_at",
)
_UPSERT_LINKS = {
    "postgresql": _upsert_links(postgresql.insert),
    "sqlite": _upsert_links(sqlite.insert),
}


async def record_links(
    session: Executor,
    connection_id: str,
    links: Sequence[tuple[LocalResource, LinkState]],
) -> None:
    """Store the ResourceLinks of confirmed writes in one upsert. A link made by a pull keeps
    its origin: only what the write changed is updated."""
    await record_links_of(session, [(connection_id, links)])


async def record_links_of(
    session: Executor,
    pushes: Sequence[tuple[str, Sequence[tuple[LocalResource, LinkState]]]],
) -> None:
    """`record_links` for several pushes, each with its connection, in one upsert."""
    now = utcnow()
    rows = []
    relinked = []
    for connection_id, links in pushes:
        latest = {(r.resource_type, r.id): (r, state) for r, state in links}
        for resource, state in latest.values():
            relinked.append((resource, state))
            rows.append(
                {
                    "v_id": new_id(),
                    "v_connection_id": connection_id,
                    "v_resource_type": resource.resource_type,
                    "v_local_id": resource.id,
                    "v_origin": LinkOrigin.pushed,
                    "v_remote_id": state.remote_id,
                    "v_remote_version_id": state.remote_version_id,
                    "v_pushed_version_id": state.pushed_version_id,
                    "v_pushed_content": fhir_json.dumps(state.pushed_content)
                    if state.pushed_content is not None
                    else None,
                    "v_updated_at": now,
                }
            )
    if not rows:
        return
    # In key order, so that two writers upserting the same links cannot deadlock.
    rows.sort(key=lambda row: (row["v_connection_id"], row["v_resource_type"], row["v_local_id"]))
    dialect = "postgresql" if is_postgres(session) else "sqlite"
    await session.execute(_UPSERT_LINKS[dialect], rows)
    for resource, state in relinked:
        resource.relink(state)
