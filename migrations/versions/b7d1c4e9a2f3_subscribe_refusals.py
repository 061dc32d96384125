"""Mini-program subscribe messages: refusals (reject, ban, filter) per member and kind

Revision ID: b7d1c4e9a2f3
Revises: b7e3c1d90a42
Create Date: 2026-12-01 10:40:00.000000

"""
from alembic import op
import sqlalchemy as sa

import models.base  # noqa: F401 (custom column types)


# revision identifiers, used by Alembic.
revision = 'b7d1c4e9a2f3'
down_revision = 'b7e3c1d90a42'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('subscribe_refusals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.String(length=10), nullable=False),
    sa.Column('template_id', sa.String(length=128), nullable=False),
    sa.Column('refused_at', models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_subscribe_refusals_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscribe_refusals')),
    sa.UniqueConstraint('member_id', 'kind', name=op.f('uq_subscribe_refusals_member_id_kind'))
    )
    with op.batch_alter_table('subscribe_refusals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscribe_refusals_member_id'), ['member_id'], unique=False)


def downgrade():
    with op.batch_alter_table('subscribe_refusals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscribe_refusals_member_id'))

    op.drop_table('subscribe_refusals')
