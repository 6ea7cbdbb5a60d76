"""Imports every table module so that `Base.metadata` is complete (Alembic, tests)."""

from service.admission import models as admission
from service.assessments import models as assessments
from service.audit import models as audit
from service.auth import models as auth
from service.cases import models as cases
from service.checkins import models as checkins
from service.connections import models as connections
from service.db.base import Base
from service.fhir_auth import models as fhir_auth
from service.fhir_store import models as fhir_store
from service.idempotency import models as idempotency
from service.links import models as links
from service.patients import models as patients
from service.plans import models as plans
from service.pull import models as pull
from service.push import models as push
from service.review import models as review
from service.smart import models as smart

__all__ = [
    "Base",
    "admission",
    "assessments",
    "audit",
    "auth",
    "cases",
    "checkins",
    "connections",
    "fhir_auth",
    "fhir_store",
    "idempotency",
    "links",
    "patients",
    "plans",
    "pull",
    "push",
    "review",
    "smart",
]
