"""Background jobs: long imports and exports queued in the database, with progress, a lease and a result

Revision ID: a5092de15a8f
Revises: caaec80b3bfd
Create Date: 2026-12-01 16:01:15.473810

"""
from alembic import op
import sqlalchemy as sa

import models.base  # noqa: F401 (custom column types)


# revision identifiers, used by Alembic.
revision = 'a5092de15a8f'
down_revision = 'caaec80b3bfd'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=True),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('org_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('result', sa.LargeBinary(), nullable=True),
    sa.Column('result_name', sa.String(length=200), nullable=True),
    sa.Column('result_type', sa.String(length=100), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('locked_by', sa.String(length=80), nullable=True),
    sa.Column('lease_until', models.base.UTCDateTime(), nullable=True),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('started_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('finished_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('expires_at', models.base.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_jobs_org_id_organizations')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['members.id'], name=op.f('fk_jobs_requested_by_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_requested_by_id'), ['requested_by_id'], unique=False)
        batch_op.create_index('ix_jobs_status_created_at', ['status', 'created_at', 'id'], unique=False)



def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_status_created_at')
        batch_op.drop_index(batch_op.f('ix_jobs_requested_by_id'))
        batch_op.drop_index(batch_op.f('ix_jobs_expires_at'))

    op.drop_table('jobs')
