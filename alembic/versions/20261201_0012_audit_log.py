"""audit_log: one append-only record of every change, in every area

The settings' own record of changes (setting_changes) becomes part of it: each row moves over
as an "update" of the resource ("setting", name) with changes {name: [old, new]}, the SMTP
password masked as the audit log masks secrets, and the table goes.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.base

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SECRET_SETTING = 'smtp_password'
AUDIT_MASK = '(secret)'
SETTINGS_MASK = '***'


def _masked(name: str, value, mask: str):
    return mask if name == SECRET_SETTING and value is not None else value


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_username', sa.String(length=64), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=255), nullable=False),
    sa.Column('changes', sa.Text(), nullable=True),
    sa.Column('snapshot', sa.Text(), nullable=True),
    sa.Column('client_address', sa.String(length=255), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)
        batch_op.create_index('ix_audit_log_resource', ['resource_type', 'resource_id'], unique=False)

    connection = op.get_bind()
    rows = connection.execute(sa.text(
        "SELECT name, old_value, new_value, changed_by, changed_by_username, at "
        "FROM setting_changes ORDER BY id"
    )).all()
    if rows:
        connection.execute(
            sa.text(
                "INSERT INTO audit_log (at, actor_id, actor_username, action, resource_type, "
                "resource_id, changes) VALUES (:at, :actor_id, :actor_username, 'update', "
                "'setting', :name, :changes)"
            ),
            [
                {
                    'at': row.at,
                    'actor_id': row.changed_by,
                    'actor_username': row.changed_by_username,
                    'name': row.name,
                    'changes': json.dumps({row.name: [
                        _masked(row.name, None if row.old_value is None else json.loads(row.old_value), AUDIT_MASK),
                        _masked(row.name, json.loads(row.new_value), AUDIT_MASK),
                    ]}),
                }
                for row in rows
            ],
        )
    op.drop_table('setting_changes')


def downgrade() -> None:
    op.create_table('setting_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('old_value', sa.Text(), nullable=True),
    sa.Column('new_value', sa.Text(), nullable=False),
    sa.Column('changed_by', sa.Integer(), nullable=True),
    sa.Column('changed_by_username', sa.String(length=64), nullable=False),
    sa.Column('at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_setting_changes')),
    sqlite_autoincrement=True
    )
    connection = op.get_bind()
    rows = connection.execute(sa.text(
        "SELECT resource_id, changes, actor_id, actor_username, at FROM audit_log "
        "WHERE resource_type = 'setting' AND changes IS NOT NULL ORDER BY id"
    )).all()
    if rows:
        changes = []
        for row in rows:
            old, new = json.loads(row.changes).get(row.resource_id, [None, None])
            changes.append({
                'name': row.resource_id,
                'old_value': None if old is None else json.dumps(_masked(row.resource_id, old, SETTINGS_MASK)),
                'new_value': json.dumps(_masked(row.resource_id, new, SETTINGS_MASK)),
                'changed_by': row.actor_id,
                'changed_by_username': row.actor_username or '(system)',
                'at': row.at,
            })
        connection.execute(
            sa.text(
                "INSERT INTO setting_changes (name, old_value, new_value, changed_by, "
                "changed_by_username, at) VALUES (:name, :old_value, :new_value, :changed_by, "
                ":changed_by_username, :at)"
            ),
            changes,
        )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_resource')
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))
        batch_op.drop_index(batch_op.f('ix_audit_log_actor_id'))
    op.drop_table('audit_log')
