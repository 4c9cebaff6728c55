"""locks and lock events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.base

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('lock_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('lock_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('owner_username', sa.String(length=64), nullable=False),
    sa.Column('branch', sa.String(length=255), nullable=True),
    sa.Column('comment', sa.String(length=500), nullable=True),
    sa.Column('acquired_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('fencing_token', sa.BigInteger(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_username', sa.String(length=64), nullable=True),
    sa.Column('message', sa.String(length=500), nullable=True),
    sa.Column('at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_lock_events_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lock_events')),
    sa.UniqueConstraint('project_id', 'seq', name=op.f('uq_lock_events_project_id'))
    )
    with op.batch_alter_table('lock_events', schema=None) as batch_op:
        batch_op.create_index('ix_lock_events_at', ['at'], unique=False)

    op.create_table('locks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('path_key', sa.String(length=1024), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('branch', sa.String(length=255), nullable=True),
    sa.Column('comment', sa.String(length=500), nullable=True),
    sa.Column('acquired_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('fencing_token', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_locks_owner_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_locks_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_locks')),
    sa.UniqueConstraint('project_id', 'path_key', name=op.f('uq_locks_project_id')),
    sqlite_autoincrement=True,
    )
    with op.batch_alter_table('locks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_locks_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_locks_owner_id'), ['owner_id'], unique=False)

    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('archived_at', db.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('default_ttl_seconds', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('force_release_policy', sa.String(length=16), nullable=False, server_default='admins'))
        batch_op.add_column(sa.Column('last_seq', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('last_fencing_token', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('purged_through_seq', sa.BigInteger(), nullable=False, server_default='0'))



def downgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('purged_through_seq')
        batch_op.drop_column('last_fencing_token')
        batch_op.drop_column('last_seq')
        batch_op.drop_column('force_release_policy')
        batch_op.drop_column('default_ttl_seconds')
        batch_op.drop_column('archived_at')

    with op.batch_alter_table('locks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_locks_owner_id'))
        batch_op.drop_index(batch_op.f('ix_locks_expires_at'))

    op.drop_table('locks')
    with op.batch_alter_table('lock_events', schema=None) as batch_op:
        batch_op.drop_index('ix_lock_events_at')

    op.drop_table('lock_events')
