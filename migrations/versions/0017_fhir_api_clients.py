"""FHIR API clients (issue 13): the clients an administrator registered, their access
tokens (SHA-256 only), the client assertions already used (replays refused), and each
client's request count for the current minute (rate limit).

Revision ID: 0017
Revises: 0016 (numbered 0017 when reserved; chained after what main held at merge)
Create Date: 2026-12-06 08:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'api_clients',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('client_id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=60), nullable=False),
        sa.Column('responsible_user_id', sa.Integer(), nullable=False),
        sa.Column('scopes', sa.String(length=2000), nullable=False),
        sa.Column('auth_method', sa.String(length=20), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=True),
        sa.Column('public_key', sa.Text(), nullable=True),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('rate_limit_per_minute', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('secret_rotated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('disabled_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ['responsible_user_id'], ['users.id'],
            name='fk_api_clients_responsible_user_id_users',
        ),
        sa.ForeignKeyConstraint(
            ['created_by_id'], ['users.id'],
            name='fk_api_clients_created_by_id_users', ondelete='SET NULL',
        ),
        sa.ForeignKeyConstraint(
            ['disabled_by_id'], ['users.id'],
            name='fk_api_clients_disabled_by_id_users', ondelete='SET NULL',
        ),
        sa.PrimaryKeyConstraint('id', name='pk_api_clients'),
        sa.UniqueConstraint('client_id', name='uq_api_clients_client_id'),
        sa.UniqueConstraint('name', name='uq_api_clients_name'),
    )
    op.create_table(
        'api_tokens',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('client_id', sa.Integer(), nullable=False),
        sa.Column('scopes', sa.String(length=2000), nullable=False),
        sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ['client_id'], ['api_clients.id'],
            name='fk_api_tokens_client_id_api_clients', ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name='pk_api_tokens'),
        sa.UniqueConstraint('token_hash', name='uq_api_tokens_token_hash'),
    )
    op.create_index('ix_api_tokens_client_expires', 'api_tokens', ['client_id', 'expires_at'])
    op.create_table(
        'api_assertion_jtis',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('client_id', sa.Integer(), nullable=False),
        sa.Column('jti', sa.String(length=255), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['client_id'], ['api_clients.id'],
            name='fk_api_assertion_jtis_client_id_api_clients', ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name='pk_api_assertion_jtis'),
        sa.UniqueConstraint('client_id', 'jti', name='uq_api_assertion_jtis_client_id'),
    )
    op.create_index(
        'ix_api_assertion_jtis_expires_at', 'api_assertion_jtis', ['expires_at']
    )
    op.create_table(
        'api_client_usage',
        sa.Column('client_id', sa.Integer(), nullable=False),
        sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('requests', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ['client_id'], ['api_clients.id'],
            name='fk_api_client_usage_client_id_api_clients', ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('client_id', name='pk_api_client_usage'),
    )


def downgrade():
    op.drop_table('api_client_usage')
    op.drop_index('ix_api_assertion_jtis_expires_at', table_name='api_assertion_jtis')
    op.drop_table('api_assertion_jtis')
    op.drop_index('ix_api_tokens_client_expires', table_name='api_tokens')
    op.drop_table('api_tokens')
    op.drop_table('api_clients')
