"""streams: the seq counters move from projects to a stream row of their own

Every project gets a stream (`locks:<slug>`) holding its `last_seq` and `purged_through_seq`;
lock events are keyed by stream. The project's separate fencing-token counter goes: a lock's
token is now the seq of the event that acquired it (new seqs are above every old token, since a
project's seq grew at least as fast as its tokens). On PostgreSQL a check function lets one
statement abort itself when the holds it meant to change were changed under it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK_FUNCTION = """
CREATE OR REPLACE FUNCTION holdfast_hold_check(ok boolean) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'the holds this write meant to change were changed under it'
            USING ERRCODE = 'HF001';
    END IF;
    RETURN ok;
END
$$
"""


def upgrade() -> None:
    op.create_table('streams',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=100), nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.Column('purged_through_seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_streams')),
    sa.UniqueConstraint('scope', name=op.f('uq_streams_scope'))
    )
    op.execute(
        "INSERT INTO streams (scope, last_seq, purged_through_seq) "
        "SELECT 'locks:' || slug, last_seq, purged_through_seq FROM projects ORDER BY id"
    )
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stream_id', sa.Integer(), nullable=True))
    op.execute(
        "UPDATE projects SET stream_id = "
        "(SELECT streams.id FROM streams WHERE streams.scope = 'locks:' || projects.slug)"
    )
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.alter_column('stream_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_projects_stream_id'), ['stream_id'])
        batch_op.create_foreign_key(batch_op.f('fk_projects_stream_id_streams'), 'streams', ['stream_id'], ['id'])
        batch_op.drop_column('purged_through_seq')
        batch_op.drop_column('last_fencing_token')
        batch_op.drop_column('last_seq')

    with op.batch_alter_table('lock_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stream_id', sa.Integer(), nullable=True))
    op.execute(
        "UPDATE lock_events SET stream_id = "
        "(SELECT projects.stream_id FROM projects WHERE projects.id = lock_events.project_id)"
    )
    with op.batch_alter_table('lock_events', schema=None) as batch_op:
        batch_op.alter_column('stream_id', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('kind', existing_type=sa.String(length=24), type_=sa.String(length=32), existing_nullable=False)
        batch_op.drop_constraint('uq_lock_events_project_id', type_='unique')
        batch_op.drop_constraint('fk_lock_events_project_id_projects', type_='foreignkey')
        batch_op.create_unique_constraint(batch_op.f('uq_lock_events_stream_id'), ['stream_id', 'seq'])
        batch_op.create_foreign_key(batch_op.f('fk_lock_events_stream_id_streams'), 'streams', ['stream_id'], ['id'], ondelete='CASCADE')
        batch_op.drop_column('project_id')

    op.create_table('stream_cursors',
    sa.Column('consumer', sa.String(length=32), nullable=False),
    sa.Column('stream_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['stream_id'], ['streams.id'], name=op.f('fk_stream_cursors_stream_id_streams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('consumer', 'stream_id', name=op.f('pk_stream_cursors'))
    )
    # Mail was sent for every event so far (in the event's own transaction, before this).
    op.execute(
        "INSERT INTO stream_cursors (consumer, stream_id, seq) "
        "SELECT 'mail', id, last_seq FROM streams"
    )

    if op.get_bind().dialect.name == 'postgresql':
        op.execute(CHECK_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP FUNCTION IF EXISTS holdfast_hold_check(boolean)")
    op.drop_table('stream_cursors')
    with op.batch_alter_table('lock_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('project_id', sa.Integer(), nullable=True))
    op.execute(
        "UPDATE lock_events SET project_id = "
        "(SELECT projects.id FROM projects WHERE projects.stream_id = lock_events.stream_id)"
    )
    with op.batch_alter_table('lock_events', schema=None) as batch_op:
        batch_op.alter_column('project_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_constraint('fk_lock_events_stream_id_streams', type_='foreignkey')
        batch_op.drop_constraint('uq_lock_events_stream_id', type_='unique')
        batch_op.create_unique_constraint('uq_lock_events_project_id', ['project_id', 'seq'])
        batch_op.create_foreign_key('fk_lock_events_project_id_projects', 'projects', ['project_id'], ['id'], ondelete='CASCADE')
        batch_op.alter_column('kind', existing_type=sa.String(length=32), type_=sa.String(length=24), existing_nullable=False)
        batch_op.drop_column('stream_id')

    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_seq', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('last_fencing_token', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('purged_through_seq', sa.BigInteger(), nullable=False, server_default='0'))
    op.execute(
        "UPDATE projects SET "
        "last_seq = (SELECT last_seq FROM streams WHERE streams.id = projects.stream_id), "
        "purged_through_seq = (SELECT purged_through_seq FROM streams WHERE streams.id = projects.stream_id), "
        "last_fencing_token = (SELECT last_seq FROM streams WHERE streams.id = projects.stream_id)"
    )
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_constraint('fk_projects_stream_id_streams', type_='foreignkey')
        batch_op.drop_constraint('uq_projects_stream_id', type_='unique')
        batch_op.drop_column('stream_id')
    op.drop_table('streams')
