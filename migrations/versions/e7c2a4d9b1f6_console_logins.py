"""Console logins: one row per login QR code of the secretary's console (scan to sign in)

Revision ID: e7c2a4d9b1f6
Revises: f1e7a9c3b5d2
Create Date: 2026-12-01 16:30:00.000000

"""
from alembic import op
import sqlalchemy as sa

import models.base  # noqa: F401 (custom column types)


# revision identifiers, used by Alembic.
revision = 'e7c2a4d9b1f6'
down_revision = 'f1e7a9c3b5d2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'console_logins',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token', sa.String(length=64), nullable=False),
        sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
        sa.Column('expires_at', models.base.UTCDateTime(), nullable=False),
        sa.Column('qr_url', sa.String(length=512), nullable=True),
        sa.Column('confirmed_by_id', sa.Integer(), nullable=True),
        sa.Column('confirmed_at', models.base.UTCDateTime(), nullable=True),
        sa.Column('refused', sa.String(length=32), nullable=True),
        sa.Column('used_at', models.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['confirmed_by_id'], ['members.id'],
                                name=op.f('fk_console_logins_confirmed_by_id_members'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_console_logins')),
        sa.UniqueConstraint('token', name=op.f('uq_console_logins_token')),
    )
    with op.batch_alter_table('console_logins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_logins_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('console_logins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_logins_expires_at'))
    op.drop_table('console_logins')
