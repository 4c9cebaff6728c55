"""job progress, stored files and download links

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.base

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('progress', sa.Float(), nullable=True))

    op.create_table('files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=127), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', db.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_files')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.create_index('ix_files_expires_at', ['expires_at'], unique=False)

    op.create_table('download_links',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('expires_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['files.id'], name=op.f('fk_download_links_file_id_files'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_download_links'))
    )
    with op.batch_alter_table('download_links', schema=None) as batch_op:
        batch_op.create_index('ix_download_links_expires_at', ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('download_links', schema=None) as batch_op:
        batch_op.drop_index('ix_download_links_expires_at')

    op.drop_table('download_links')
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.drop_index('ix_files_expires_at')

    op.drop_table('files')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('progress')
