"""The log stores its inner nodes as they complete, so roots and proofs cost O(log^2 n) reads.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BATCH = 5000


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def upgrade() -> None:
    """Create the table, fill it from the leaves (RFC 6962 node hashes, frozen here), and make
    it append-only like the other audit tables."""
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("node_hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_audit_nodes")),
    )
    bind = op.get_bind()
    insert = sa.text("INSERT INTO audit_nodes (level, idx, node_hash) VALUES (:l, :i, :h)")
    compact: list[bytes] = []
    pending: list[dict[str, object]] = []
    rows = bind.execute(sa.text("SELECT leaf_hash FROM audit_log ORDER BY seq")).all()
    for size, (leaf,) in enumerate(rows):
        compact.append(bytes(leaf))
        s, level = size, 0
        while s & 1:
            right = compact.pop()
            compact[-1] = _node(compact[-1], right)
            s >>= 1
            level += 1
            pending.append({"l": level, "i": size >> level, "h": compact[-1]})
        if len(pending) >= BATCH:
            bind.execute(insert, pending)
            pending = []
    if pending:
        bind.execute(insert, pending)
    if bind.dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_nodes_no_{action.lower()} BEFORE {action} ON audit_nodes "
                f"BEGIN SELECT RAISE(ABORT, 'audit_nodes is append-only: {action} refused'); END"
            )
        return
    op.execute(
        "CREATE TRIGGER audit_nodes_append_only BEFORE UPDATE OR DELETE ON audit_nodes "
        "FOR EACH ROW EXECUTE FUNCTION nqba_refuse_audit_change()"
    )
    op.execute(
        "CREATE TRIGGER audit_nodes_no_truncate BEFORE TRUNCATE ON audit_nodes "
        "FOR EACH STATEMENT EXECUTE FUNCTION nqba_refuse_audit_change()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS audit_nodes_no_{action}")
    op.drop_table("audit_nodes")
