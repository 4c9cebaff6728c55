"""watches over time: an unwatched watch is ended, not deleted

Mail about a lock change is written after the change, by the mailer; it tells those who were
watching when the change happened, so a watch keeps when it began and ended.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.base

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('watches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ended_at', db.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.drop_constraint('uq_watches_user_id', type_='unique')
        batch_op.create_index(
            'uq_watches_active', ['user_id', 'project_id', 'path_prefix'], unique=True,
            sqlite_where=sa.text('ended_at IS NULL'), postgresql_where=sa.text('ended_at IS NULL'),
        )


def downgrade() -> None:
    op.execute("DELETE FROM watches WHERE ended_at IS NOT NULL")
    with op.batch_alter_table('watches', schema=None) as batch_op:
        batch_op.drop_index('uq_watches_active')
        batch_op.create_unique_constraint('uq_watches_user_id', ['user_id', 'project_id', 'path_prefix'])
        batch_op.drop_column('ended_at')
