"""The outbox's pending rows in claim order (a partial index): a claim needs no sort of the backlog

Revision ID: f1e7a9c3b5d2
Revises: a5092de15a8f
Create Date: 2026-12-01 16:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f1e7a9c3b5d2'
down_revision = 'a5092de15a8f'
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade():
    op.create_index('ix_outbox_pending', 'outbox', ['id'], unique=False,
                    postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade():
    op.drop_index('ix_outbox_pending', table_name='outbox')
