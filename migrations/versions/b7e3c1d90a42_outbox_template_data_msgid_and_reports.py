"""Outbox: template field data, WeChat's msgid; template delivery reports

Revision ID: b7e3c1d90a42
Revises: a7d3c9e1f4b2
Create Date: 2026-12-01 10:40:00

"""
from alembic import op
import sqlalchemy as sa

import models.base  # noqa: F401 (custom column types)


# revision identifiers, used by Alembic.
revision = 'b7e3c1d90a42'
down_revision = 'a7d3c9e1f4b2'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('data', sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column('wx_msgid', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_outbox_wx_msgid'), ['wx_msgid'], unique=False)
    op.create_table(
        'template_reports',
        sa.Column('msgid', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=40), nullable=False),
        sa.Column('received_at', models.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('msgid', name=op.f('pk_template_reports')),
    )


def downgrade():
    op.drop_table('template_reports')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_wx_msgid'))
        batch_op.drop_column('wx_msgid')
        batch_op.drop_column('data')
