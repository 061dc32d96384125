"""Binding releases: the audit trail of a secretary freeing a member's WeChat binding (解绑 姓名)

Revision ID: c3a9f2d18e57
Revises: d3a8f61c2b47
Create Date: 2026-12-01 11:40:00.000000

"""
from alembic import op
import sqlalchemy as sa

import models.base  # noqa: F401 (custom column types)


# revision identifiers, used by Alembic.
revision = 'c3a9f2d18e57'
down_revision = 'd3a8f61c2b47'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'binding_releases',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('released_by_id', sa.Integer(), nullable=False),
        sa.Column('released_at', models.base.UTCDateTime(), nullable=False),
        sa.Column('openid', sa.String(length=64), nullable=True),
        sa.Column('miniapp_openid', sa.String(length=64), nullable=True),
        sa.Column('bound_at', models.base.UTCDateTime(), nullable=True),
        sa.Column('reason', sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_binding_releases_member_id_members')),
        sa.ForeignKeyConstraint(['released_by_id'], ['members.id'],
                                name=op.f('fk_binding_releases_released_by_id_members')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_binding_releases')),
    )
    with op.batch_alter_table('binding_releases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_binding_releases_member_id'), ['member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_binding_releases_released_by_id'), ['released_by_id'], unique=False)


def downgrade():
    with op.batch_alter_table('binding_releases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_binding_releases_released_by_id'))
        batch_op.drop_index(batch_op.f('ix_binding_releases_member_id'))
    op.drop_table('binding_releases')
