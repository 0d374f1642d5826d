"""alert_changes: a watermark of committed writes to the alert store (read cache)

Every transaction that writes alerts, alert_references or alert_history adds one to a row of
alert_changes (once, at its first such statement), so ``SELECT sum(n) FROM alert_changes`` changes
exactly when such a transaction commits, in this database only. The counter is split in 16
rows picked by transaction id, so concurrent writers rarely wait on the same row lock.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

SHARDS = 16
WATCHED = ("alerts", "alert_references", "alert_history")


def upgrade() -> None:
    op.create_table(
        'alert_changes',
        sa.Column('shard', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('n', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('shard', name=op.f('pk_alert_changes')),
    )
    op.bulk_insert(
        sa.table('alert_changes', sa.column('shard', sa.Integer()), sa.column('n', sa.BigInteger())),
        [{'shard': i, 'n': 0} for i in range(SHARDS)],
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(
            f"""
            CREATE FUNCTION alert_changes_bump() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE
                tx text := txid_current()::text;
            BEGIN
                -- Once per transaction: an ingest batch runs several statements, and one
                -- bump is all the watermark needs (measured: a bump per statement cost
                -- ingest about a fifth of its rate).
                IF current_setting('eas.alert_changes_tx', true) IS DISTINCT FROM tx THEN
                    PERFORM set_config('eas.alert_changes_tx', tx, true);
                    UPDATE alert_changes SET n = n + 1 WHERE shard = txid_current() % {SHARDS};
                END IF;
                RETURN NULL;
            END $$
            """
        )
        for table in WATCHED:
            op.execute(
                f"CREATE TRIGGER {table}_changes AFTER INSERT OR UPDATE OR DELETE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION alert_changes_bump()"
            )
    else:
        # SQLite: row triggers only, and one writer at a time (no lock to spread).
        for table in WATCHED:
            for what in ("INSERT", "UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_changes_{what.lower()} AFTER {what} ON {table} "
                    "BEGIN UPDATE alert_changes SET n = n + 1 WHERE shard = 0; END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in WATCHED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_changes ON {table}")
        op.execute("DROP FUNCTION IF EXISTS alert_changes_bump()")
    else:
        for table in WATCHED:
            for what in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_changes_{what}")
    op.drop_table('alert_changes')
