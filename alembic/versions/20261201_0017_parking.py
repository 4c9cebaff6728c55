"""Parking: lots, their numbered spots, spot bookings (the holds on each lot's `lot:<id>`
stream) and spot events; the reminder and monthly-report bookkeeping. No two active bookings
of one spot overlap: an exclusion constraint on PostgreSQL (btree_gist), triggers on SQLite.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.base

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_TRIGGER = """
CREATE TRIGGER spot_bookings_no_overlap_{event}
BEFORE {EVENT} ON spot_bookings
WHEN NEW.status IN ('RESERVED', 'PARKED')
BEGIN
  SELECT RAISE(ABORT, 'spot_bookings_no_overlap: the spot is booked for that time')
  WHERE EXISTS (
    SELECT 1 FROM spot_bookings AS other
    WHERE other.spot_id = NEW.spot_id AND other.id IS NOT NEW.id
      AND other.status IN ('RESERVED', 'PARKED')
      AND (NEW.ends_at IS NULL OR other.starts_at < NEW.ends_at)
      AND (other.ends_at IS NULL OR NEW.starts_at < other.ends_at)
  );
END
"""


def upgrade() -> None:
    op.create_table('parking_reports',
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('sent_at', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('month', name=op.f('pk_parking_reports'))
    )
    op.create_table('parking_lots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=True),
    sa.Column('postcode', sa.String(length=20), nullable=True),
    sa.Column('price_per_hour', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('spot_count', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('opens_at', sa.Integer(), nullable=True),
    sa.Column('closes_at', sa.Integer(), nullable=True),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('stream_id', sa.Integer(), nullable=True),
    sa.Column('created_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['stream_id'], ['streams.id'], name=op.f('fk_parking_lots_stream_id_streams'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parking_lots'))
    )
    op.create_table('parking_reminders',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('reminded_on', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_parking_reminders_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_parking_reminders'))
    )
    op.create_table('spot_events',
    sa.Column('spot_booking_id', sa.Integer(), nullable=True),
    sa.Column('spot_number', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('holder_username', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=True),
    sa.Column('starts_at', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ends_at', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('fencing_token', sa.BigInteger(), nullable=True),
    sa.Column('free', sa.Integer(), nullable=False),
    sa.Column('occupied', sa.Integer(), nullable=False),
    sa.Column('reserved', sa.Integer(), nullable=False),
    sa.Column('spot_count', sa.Integer(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stream_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_username', sa.String(length=64), nullable=True),
    sa.Column('message', sa.String(length=500), nullable=True),
    sa.Column('at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['stream_id'], ['streams.id'], name=op.f('fk_spot_events_stream_id_streams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_spot_events')),
    sa.UniqueConstraint('stream_id', 'seq', name=op.f('uq_spot_events_stream_id'))
    )
    with op.batch_alter_table('spot_events', schema=None) as batch_op:
        batch_op.create_index('ix_spot_events_at', ['at'], unique=False)

    op.create_table('parking_spots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['lot_id'], ['parking_lots.id'], name=op.f('fk_parking_spots_lot_id_parking_lots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parking_spots')),
    sa.UniqueConstraint('lot_id', 'number', name=op.f('uq_parking_spots_lot_id'))
    )
    op.create_table('spot_bookings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=False),
    sa.Column('spot_id', sa.Integer(), nullable=False),
    sa.Column('spot_number', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('vehicle_number', sa.String(length=10), nullable=True),
    sa.Column('vehicle_model', sa.String(length=50), nullable=True),
    sa.Column('vehicle_colour', sa.String(length=30), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=True),
    sa.Column('reserved_from', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reserved_until', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('starts_at', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ends_at', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('parked_at', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('left_at', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('rate', sa.Numeric(precision=10, scale=2), nullable=True),
    sa.Column('cost', sa.Numeric(precision=10, scale=2), nullable=True),
    sa.Column('created_at', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('fencing_token', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['lot_id'], ['parking_lots.id'], name=op.f('fk_spot_bookings_lot_id_parking_lots'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['spot_id'], ['parking_spots.id'], name=op.f('fk_spot_bookings_spot_id_parking_spots'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_spot_bookings_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_spot_bookings')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('spot_bookings', schema=None) as batch_op:
        batch_op.create_index('ix_spot_bookings_lot_status', ['lot_id', 'status'], unique=False)
        batch_op.create_index('ix_spot_bookings_one_car_per_spot', ['spot_id'], unique=True, sqlite_where=sa.text("status = 'PARKED'"), postgresql_where=sa.text("status = 'PARKED'"))
        batch_op.create_index(batch_op.f('ix_spot_bookings_parked_at'), ['parked_at'], unique=False)
        batch_op.create_index('ix_spot_bookings_user_status', ['user_id', 'status'], unique=False)


    if op.get_context().dialect.name == 'postgresql':
        op.execute('CREATE EXTENSION IF NOT EXISTS btree_gist')
        op.execute(
            "ALTER TABLE spot_bookings ADD CONSTRAINT spot_bookings_no_overlap EXCLUDE USING gist "
            "(spot_id WITH =, tstzrange(starts_at, ends_at) WITH &&) "
            "WHERE (status IN ('RESERVED', 'PARKED'))"
        )
    else:
        for event in ('INSERT', 'UPDATE'):
            op.execute(SQLITE_TRIGGER.format(event=event.lower(), EVENT=event))


def downgrade() -> None:
    if op.get_context().dialect.name != 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS spot_bookings_no_overlap_insert')
        op.execute('DROP TRIGGER IF EXISTS spot_bookings_no_overlap_update')
    with op.batch_alter_table('spot_bookings', schema=None) as batch_op:
        batch_op.drop_index('ix_spot_bookings_user_status')
        batch_op.drop_index(batch_op.f('ix_spot_bookings_parked_at'))
        batch_op.drop_index('ix_spot_bookings_one_car_per_spot', sqlite_where=sa.text("status = 'PARKED'"), postgresql_where=sa.text("status = 'PARKED'"))
        batch_op.drop_index('ix_spot_bookings_lot_status')

    op.drop_table('spot_bookings')
    op.drop_table('parking_spots')
    with op.batch_alter_table('spot_events', schema=None) as batch_op:
        batch_op.drop_index('ix_spot_events_at')

    op.drop_table('spot_events')
    op.drop_table('parking_reminders')
    op.drop_table('parking_lots')
    op.drop_table('parking_reports')
