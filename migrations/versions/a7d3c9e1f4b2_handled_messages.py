"""Handled messages: the keys of WeChat messages whose handling had an effect

Revision ID: a7d3c9e1f4b2
Revises: 455b41fab812
Create Date: 2026-12-01 10:30:00.000000

"""
from alembic import op
import sqlalchemy as sa

import models.base  # noqa: F401 (custom column types)


# revision identifiers, used by Alembic.
revision = 'a7d3c9e1f4b2'
down_revision = '455b41fab812'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'handled_messages',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('reply', sa.Text(), nullable=True),
        sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_handled_messages')),
    )
    with op.batch_alter_table('handled_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handled_messages_created_at'), ['created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('handled_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_handled_messages_created_at'))
    op.drop_table('handled_messages')
