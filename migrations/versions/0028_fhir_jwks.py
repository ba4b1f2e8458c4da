"""FHIR API clients: the URL where a private-key client publishes its public keys (SMART
Backend Services' jwks_url), fetched and cached by the token endpoint, as the alternative to
a key pasted at registration.

Revision ID: 0028
Revises: 0022
Create Date: 2026-12-06 12:30:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("api_clients") as batch:
        batch.add_column(sa.Column("jwks_url", sa.String(length=500), nullable=True))


def downgrade():
    with op.batch_alter_table("api_clients") as batch:
        batch.drop_column("jwks_url")
