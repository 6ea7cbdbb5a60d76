"""One head again: the domain branches (connections, FHIR clients, FHIR store, audit) meet.

Revision ID: 0006_merge
Revises: 0002_connections, 0003_fhir_clients, 0004_fhir_store, 0005_audit
Create Date: 2026-11-23 11:28:28.381292
"""

from collections.abc import Sequence


revision: str = '0006_merge'
down_revision: str | Sequence[str] | None = ('0002_connections', '0003_fhir_clients', '0004_fhir_store', '0005_audit')
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
