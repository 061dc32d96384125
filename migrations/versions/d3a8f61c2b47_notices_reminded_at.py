"""Notices remember when their last reminder went out (再提醒 at most once per NOTICE_REMIND_HOURS)

Revision ID: d3a8f61c2b47
Revises: b7c41e5a9d20
Create Date: 2026-12-01 11:40:00.000000

"""
from alembic import op
import sqlalchemy as sa

import models.base  # noqa: F401 (custom column types)


# revision identifiers, used by Alembic.
revision = 'd3a8f61c2b47'
down_revision = 'b7c41e5a9d20'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reminded_at', models.base.UTCDateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_column('reminded_at')
