"""Events at venues: venues (unique by lower(name)) and their events, which never overlap at
one venue: an exclusion constraint on PostgreSQL (btree_gist), triggers on SQLite

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.base

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OVERLAPS = """EXISTS (SELECT 1 FROM venue_events AS other
    WHERE other.venue_id = NEW.venue_id
      AND other.starts_at < NEW.blocks_until
      AND NEW.starts_at < other.blocks_until{other})"""
REFUSE = "SELECT RAISE(ABORT, 'venue_events_no_overlap: the venue is taken at that time')"


def upgrade() -> None:
    # Plain create_table / create_index (no batch mode): a batch rebuild on SQLite would lose
    # the expression index and the triggers.
    op.create_table('venues',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=500), nullable=True),
    sa.Column('created_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_venues'))
    )
    op.create_index('uq_venues_name_lower', 'venues', [sa.text('lower(name)')], unique=True)

    op.create_table('venue_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('starts_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('blocks_until', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('venue_id', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('organiser_id', sa.Integer(), nullable=True),
    sa.Column('organiser_username', sa.String(length=64), nullable=False),
    sa.Column('created_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('blocks_until > starts_at', name=op.f('ck_venue_events_blocks_after_start')),
    sa.ForeignKeyConstraint(['organiser_id'], ['users.id'], name=op.f('fk_venue_events_organiser_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['venue_id'], ['venues.id'], name=op.f('fk_venue_events_venue_id_venues'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_venue_events'))
    )
    op.create_index('ix_venue_events_organiser_id', 'venue_events', ['organiser_id'], unique=False)
    op.create_index('ix_venue_events_venue_id', 'venue_events', ['venue_id'], unique=False)
    op.create_index('ix_venue_events_starts_at_id', 'venue_events', ['starts_at', 'id'], unique=False)

    if op.get_bind().dialect.name == 'postgresql':
        op.execute('CREATE EXTENSION IF NOT EXISTS btree_gist')
        op.execute(
            'ALTER TABLE venue_events ADD CONSTRAINT ex_venue_events_no_overlap '
            'EXCLUDE USING gist (venue_id WITH =, tstzrange(starts_at, blocks_until) WITH &&)'
        )
    else:
        # SQLite stores these UTC times as fixed-width text, so text order is time order.
        op.execute(
            'CREATE TRIGGER venue_events_no_overlap_insert BEFORE INSERT ON venue_events '
            f'FOR EACH ROW WHEN {OVERLAPS.format(other="")} BEGIN {REFUSE}; END'
        )
        op.execute(
            'CREATE TRIGGER venue_events_no_overlap_update '
            'BEFORE UPDATE OF venue_id, starts_at, blocks_until ON venue_events '
            f'FOR EACH ROW WHEN {OVERLAPS.format(other=" AND other.id != NEW.id")} '
            f'BEGIN {REFUSE}; END'
        )


def downgrade() -> None:
    # The btree_gist extension stays: other tables may use it.
    if op.get_bind().dialect.name != 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS venue_events_no_overlap_update')
        op.execute('DROP TRIGGER IF EXISTS venue_events_no_overlap_insert')
    op.drop_index('ix_venue_events_starts_at_id', table_name='venue_events')
    op.drop_index('ix_venue_events_venue_id', table_name='venue_events')
    op.drop_index('ix_venue_events_organiser_id', table_name='venue_events')
    op.drop_table('venue_events')
    op.drop_index('uq_venues_name_lower', table_name='venues')
    op.drop_table('venues')
