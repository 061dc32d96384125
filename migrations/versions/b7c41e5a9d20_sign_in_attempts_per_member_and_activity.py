"""Sign-in attempts per member and activity (wrong codes counted atomically, with a lock-out)

Revision ID: b7c41e5a9d20
Revises: b7d1c4e9a2f3
Create Date: 2026-12-01 10:50:00.000000

"""
from alembic import op
import sqlalchemy as sa

import models.base  # noqa: F401 (custom column types)


# revision identifiers, used by Alembic.
revision = 'b7c41e5a9d20'
down_revision = 'b7d1c4e9a2f3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('activity_checkin_attempts',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('activity_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('locked_until', models.base.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.PrimaryKeyConstraint('member_id', 'activity_id')
    )


def downgrade():
    op.drop_table('activity_checkin_attempts')
