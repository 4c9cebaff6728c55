"""IT assets: datacenters, environments, servers (with tags), containers (with port
mappings), services, GPUs, and GPU holds on the hold engine's "gpus" stream

The GPU stream and the three first environments are made at start-up (domain/assets).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.base

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('datacenters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('location', sa.String(length=200), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_datacenters')),
    sa.UniqueConstraint('name', name=op.f('uq_datacenters_name'))
    )
    op.create_table('environments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('color', sa.String(length=7), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_environments')),
    sa.UniqueConstraint('name', name=op.f('uq_environments_name'))
    )
    op.create_table('gpu_events',
    sa.Column('gpu_hold_id', sa.Integer(), nullable=False),
    sa.Column('gpu_id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.String(length=100), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('holder_id', sa.Integer(), nullable=False),
    sa.Column('holder_username', sa.String(length=64), nullable=False),
    sa.Column('since', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('due_back', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('fencing_token', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stream_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_username', sa.String(length=64), nullable=True),
    sa.Column('message', sa.String(length=500), nullable=True),
    sa.Column('at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['stream_id'], ['streams.id'], name=op.f('fk_gpu_events_stream_id_streams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gpu_events')),
    sa.UniqueConstraint('stream_id', 'seq', name=op.f('uq_gpu_events_stream_id'))
    )
    with op.batch_alter_table('gpu_events', schema=None) as batch_op:
        batch_op.create_index('ix_gpu_events_at', ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_gpu_events_gpu_id'), ['gpu_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_gpu_events_holder_id'), ['holder_id'], unique=False)

    op.create_table('servers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('hostname', sa.String(length=253), nullable=True),
    sa.Column('management_ip', sa.String(length=45), nullable=True),
    sa.Column('public_ip', sa.String(length=45), nullable=True),
    sa.Column('cpu_cores', sa.Integer(), nullable=True),
    sa.Column('memory_gb', sa.Integer(), nullable=True),
    sa.Column('disk_gb', sa.Integer(), nullable=True),
    sa.Column('os', sa.String(length=100), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('datacenter_id', sa.Integer(), nullable=False),
    sa.Column('environment_id', sa.Integer(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['datacenter_id'], ['datacenters.id'], name=op.f('fk_servers_datacenter_id_datacenters')),
    sa.ForeignKeyConstraint(['environment_id'], ['environments.id'], name=op.f('fk_servers_environment_id_environments'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_servers')),
    sa.UniqueConstraint('name', name=op.f('uq_servers_name'))
    )
    with op.batch_alter_table('servers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_servers_datacenter_id'), ['datacenter_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_servers_environment_id'), ['environment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_servers_status'), ['status'], unique=False)

    op.create_table('containers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('image', sa.String(length=300), nullable=False),
    sa.Column('server_id', sa.Integer(), nullable=False),
    sa.Column('cpu_limit', sa.Float(), nullable=True),
    sa.Column('memory_limit_mb', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('environment_id', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['environment_id'], ['environments.id'], name=op.f('fk_containers_environment_id_environments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['server_id'], ['servers.id'], name=op.f('fk_containers_server_id_servers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_containers')),
    sa.UniqueConstraint('server_id', 'name', name=op.f('uq_containers_server_id'))
    )
    with op.batch_alter_table('containers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_containers_environment_id'), ['environment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_containers_server_id'), ['server_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_containers_status'), ['status'], unique=False)

    op.create_table('gpus',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('serial', sa.String(length=100), nullable=False),
    sa.Column('memory_gb', sa.Integer(), nullable=True),
    sa.Column('server_id', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['server_id'], ['servers.id'], name=op.f('fk_gpus_server_id_servers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gpus')),
    sa.UniqueConstraint('serial', name=op.f('uq_gpus_serial'))
    )
    with op.batch_alter_table('gpus', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gpus_server_id'), ['server_id'], unique=False)

    op.create_table('server_tags',
    sa.Column('server_id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=50), nullable=False),
    sa.ForeignKeyConstraint(['server_id'], ['servers.id'], name=op.f('fk_server_tags_server_id_servers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('server_id', 'tag', name=op.f('pk_server_tags'))
    )
    with op.batch_alter_table('server_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_server_tags_tag'), ['tag'], unique=False)

    op.create_table('gpu_holds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('gpu_id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.String(length=100), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('holder_id', sa.Integer(), nullable=False),
    sa.Column('since', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('due_back', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('fencing_token', sa.BigInteger(), nullable=False),
    sa.Column('overdue_mailed_at', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['gpu_id'], ['gpus.id'], name=op.f('fk_gpu_holds_gpu_id_gpus'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['holder_id'], ['users.id'], name=op.f('fk_gpu_holds_holder_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gpu_holds')),
    sa.UniqueConstraint('gpu_id', name=op.f('uq_gpu_holds_gpu_id')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('gpu_holds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gpu_holds_due_back'), ['due_back'], unique=False)
        batch_op.create_index(batch_op.f('ix_gpu_holds_holder_id'), ['holder_id'], unique=False)

    op.create_table('port_mappings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('container_id', sa.Integer(), nullable=False),
    sa.Column('server_id', sa.Integer(), nullable=False),
    sa.Column('host_port', sa.Integer(), nullable=False),
    sa.Column('container_port', sa.Integer(), nullable=False),
    sa.Column('protocol', sa.String(length=3), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['container_id'], ['containers.id'], name=op.f('fk_port_mappings_container_id_containers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['server_id'], ['servers.id'], name=op.f('fk_port_mappings_server_id_servers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_port_mappings')),
    sa.UniqueConstraint('server_id', 'host_port', 'protocol', name=op.f('uq_port_mappings_server_id'))
    )
    with op.batch_alter_table('port_mappings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_port_mappings_container_id'), ['container_id'], unique=False)

    op.create_table('services',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('port', sa.Integer(), nullable=True),
    sa.Column('health_check_url', sa.String(length=2000), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('container_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['container_id'], ['containers.id'], name=op.f('fk_services_container_id_containers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_services')),
    sa.UniqueConstraint('container_id', 'name', name=op.f('uq_services_container_id'))
    )
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_services_container_id'), ['container_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_services_container_id'))

    op.drop_table('services')
    with op.batch_alter_table('port_mappings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_port_mappings_container_id'))

    op.drop_table('port_mappings')
    with op.batch_alter_table('gpu_holds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gpu_holds_holder_id'))
        batch_op.drop_index(batch_op.f('ix_gpu_holds_due_back'))

    op.drop_table('gpu_holds')
    with op.batch_alter_table('server_tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_server_tags_tag'))

    op.drop_table('server_tags')
    with op.batch_alter_table('gpus', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gpus_server_id'))

    op.drop_table('gpus')
    with op.batch_alter_table('containers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_containers_status'))
        batch_op.drop_index(batch_op.f('ix_containers_server_id'))
        batch_op.drop_index(batch_op.f('ix_containers_environment_id'))

    op.drop_table('containers')
    with op.batch_alter_table('servers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_servers_status'))
        batch_op.drop_index(batch_op.f('ix_servers_environment_id'))
        batch_op.drop_index(batch_op.f('ix_servers_datacenter_id'))

    op.drop_table('servers')
    with op.batch_alter_table('gpu_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gpu_events_holder_id'))
        batch_op.drop_index(batch_op.f('ix_gpu_events_gpu_id'))
        batch_op.drop_index('ix_gpu_events_at')

    op.drop_table('gpu_events')
    op.drop_table('environments')
    op.drop_table('datacenters')
    op.execute("DELETE FROM streams WHERE scope = 'gpus'")
