"""Activities by their end: a member's upcoming list reads the activities not yet over, not every
activity ever held

Revision ID: b4d81f0c2a7e
Revises: e7c2a4d9b1f6
Create Date: 2026-12-01 22:45:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'b4d81f0c2a7e'
down_revision = 'e7c2a4d9b1f6'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_activities_ends_at', 'activities', ['ends_at'], unique=False)


def downgrade():
    op.drop_index('ix_activities_ends_at', table_name='activities')
