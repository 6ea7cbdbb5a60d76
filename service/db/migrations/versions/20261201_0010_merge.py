"""One head again: the pull and push branches meet.

Revision ID: 0010_merge
Revises: 0008_pulls, 0009_push_outbox
Create Date: 2026-12-01 16:30:00
"""

from collections.abc import Sequence


revision: str = '0010_merge'
down_revision: str | Sequence[str] | None = ('0008_pulls', '0009_push_outbox')
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
