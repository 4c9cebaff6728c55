"""Fabrication parts: parts, their claims (holds on the engine's "parts" stream), the hand
workers' log and part events; users.permissions, what admins grant beyond the role

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.base

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('part_events',
    sa.Column('part_claim_id', sa.Integer(), nullable=True),
    sa.Column('part_id', sa.Integer(), nullable=False),
    sa.Column('holder_id', sa.Integer(), nullable=True),
    sa.Column('holder_username', sa.String(length=64), nullable=True),
    sa.Column('since', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('fencing_token', sa.BigInteger(), nullable=True),
    sa.Column('short_id', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stream_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_username', sa.String(length=64), nullable=True),
    sa.Column('message', sa.String(length=500), nullable=True),
    sa.Column('at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['stream_id'], ['streams.id'], name=op.f('fk_part_events_stream_id_streams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_part_events')),
    sa.UniqueConstraint('stream_id', 'seq', name=op.f('uq_part_events_stream_id'))
    )
    with op.batch_alter_table('part_events', schema=None) as batch_op:
        batch_op.create_index('ix_part_events_at', ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_part_events_part_id'), ['part_id'], unique=False)

    op.create_table('parts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('short_id', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=200), nullable=True),
    sa.Column('subsystem', sa.String(length=100), nullable=True),
    sa.Column('material', sa.String(length=100), nullable=True),
    sa.Column('material_thickness', sa.String(length=50), nullable=True),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('onshape_url', sa.String(length=2000), nullable=True),
    sa.Column('reviewer_id', sa.Integer(), nullable=True),
    sa.Column('completed_at', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_incorrectly', sa.Boolean(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_parts_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['reviewer_id'], ['users.id'], name=op.f('fk_parts_reviewer_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parts')),
    sa.UniqueConstraint('number', name=op.f('uq_parts_number')),
    sa.UniqueConstraint('short_id', name=op.f('uq_parts_short_id'))
    )
    with op.batch_alter_table('parts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parts_stage'), ['stage'], unique=False)
        batch_op.create_index(batch_op.f('ix_parts_subsystem'), ['subsystem'], unique=False)

    op.create_table('part_claims',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('part_id', sa.Integer(), nullable=False),
    sa.Column('holder_id', sa.Integer(), nullable=True),
    sa.Column('since', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started', sa.Boolean(), nullable=False),
    sa.Column('fencing_token', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['holder_id'], ['users.id'], name=op.f('fk_part_claims_holder_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['part_id'], ['parts.id'], name=op.f('fk_part_claims_part_id_parts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_part_claims')),
    sa.UniqueConstraint('part_id', name=op.f('uq_part_claims_part_id')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('part_claims', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_part_claims_holder_id'), ['holder_id'], unique=False)

    op.create_table('part_workers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('part_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['part_id'], ['parts.id'], name=op.f('fk_part_workers_part_id_parts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_part_workers_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_part_workers'))
    )
    with op.batch_alter_table('part_workers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_part_workers_part_id'), ['part_id'], unique=False)

    # A plain ADD COLUMN: batch mode would rebuild users on SQLite and lose the expression
    # index uq_users_username_lower.
    op.add_column('users', sa.Column('permissions', sa.String(length=500), server_default='', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('permissions')
    if op.get_bind().dialect.name == 'sqlite':  # the rebuilt table lost its expression index
        op.create_index('uq_users_username_lower', 'users', [sa.text('lower(username)')], unique=True)

    with op.batch_alter_table('part_workers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_part_workers_part_id'))

    op.drop_table('part_workers')
    with op.batch_alter_table('part_claims', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_part_claims_holder_id'))

    op.drop_table('part_claims')
    with op.batch_alter_table('parts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_parts_subsystem'))
        batch_op.drop_index(batch_op.f('ix_parts_stage'))

    op.drop_table('parts')
    with op.batch_alter_table('part_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_part_events_part_id'))
        batch_op.drop_index('ix_part_events_at')

    op.drop_table('part_events')
