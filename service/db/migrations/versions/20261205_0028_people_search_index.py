"""people search index: index the stored Practitioners and Organization

`/fhir` now serves the people a case names (Practitioner, Organization) for reading and
searching (`service.fhir_store.search_params`). Those stored before have no index rows; this
writes them, from the stored bytes, with the index function every new version goes through.

Revision ID: 0028_people_search_index
Revises: 0027_idempotency_audit
Create Date: 2026-12-05 12:00:00
"""

from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from alembic import op

from service.fhir_store.search_params import index_values

revision: str = "0028_people_search_index"
down_revision: str | None = "0027_idempotency_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PEOPLE = ("Practitioner", "Organization")
_resources = sa.table(
    "fhir_resources",
    sa.column("resource_type", sa.String),
    sa.column("id", sa.String),
    sa.column("deleted", sa.Boolean),
    sa.column("content", sa.LargeBinary),
)
_index = sa.table(
    "fhir_search_index",
    sa.column("resource_type", sa.String),
    sa.column("resource_id", sa.String),
    sa.column("param", sa.String),
    sa.column("system", sa.String),
    sa.column("value", sa.String),
    sa.column("low", sa.DateTime(timezone=True)),
    sa.column("high", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    connection = op.get_bind()
    stored = connection.execute(
        sa.select(_resources.c.resource_type, _resources.c.id, _resources.c.content).where(
            _resources.c.resource_type.in_(PEOPLE), _resources.c.deleted.is_(False)
        )
    ).all()
    connection.execute(_index.delete().where(_index.c.resource_type.in_(PEOPLE)))
    rows = [
        {
            "resource_type": resource_type,
            "resource_id": resource_id,
            "param": value.param,
            "system": value.system,
            "value": value.value,
            "low": value.low,
            "high": value.high,
        }
        for resource_type, resource_id, content in stored
        for value in index_values(resource_type, orjson.loads(content))
    ]
    if rows:
        connection.execute(_index.insert(), rows)


def downgrade() -> None:
    op.get_bind().execute(_index.delete().where(_index.c.resource_type.in_(PEOPLE)))
