"""part files: files uploaded to parts and their 3D models; stored files whose bytes are in
the blob storage (files.storage_key, files.data null)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.base

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('storage_key', sa.String(length=255), nullable=True))
        batch_op.alter_column('data', existing_type=sa.LargeBinary(), nullable=True)

    op.create_table('part_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('part_id', sa.Integer(), nullable=False),
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('uploaded_by', sa.Integer(), nullable=True),
    sa.Column('uploaded_at', db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('model_status', sa.String(length=8), nullable=True),
    sa.Column('model_error', sa.Text(), nullable=True),
    sa.Column('model_file_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['file_id'], ['files.id'], name=op.f('fk_part_files_file_id_files')),
    sa.ForeignKeyConstraint(['model_file_id'], ['files.id'], name=op.f('fk_part_files_model_file_id_files')),
    sa.ForeignKeyConstraint(['part_id'], ['parts.id'], name=op.f('fk_part_files_part_id_parts')),
    sa.ForeignKeyConstraint(['uploaded_by'], ['users.id'], name=op.f('fk_part_files_uploaded_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_part_files')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('part_files', schema=None) as batch_op:
        batch_op.create_index('ix_part_files_part_id', ['part_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('part_files', schema=None) as batch_op:
        batch_op.drop_index('ix_part_files_part_id')

    op.drop_table('part_files')
    # Files whose bytes are in the blob storage cannot be kept by the older schema.
    op.execute(
        "DELETE FROM download_links WHERE file_id IN"
        " (SELECT id FROM files WHERE storage_key IS NOT NULL)"
    )
    op.execute("DELETE FROM files WHERE storage_key IS NOT NULL")
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.alter_column('data', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column('storage_key')
