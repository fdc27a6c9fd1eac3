"""The audit head keeps the log's compact range, so checkpoint roots cost O(log n).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def upgrade() -> None:
    """Add the column and fill it from the leaves (RFC 6962 node hashes, frozen here)."""
    with op.batch_alter_table("audit_head") as batch:
        batch.add_column(sa.Column("compact_range", sa.LargeBinary(), nullable=True))
    bind = op.get_bind()
    nodes: list[bytes] = []
    rows = bind.execute(sa.text("SELECT leaf_hash FROM audit_log ORDER BY seq"))
    for size, (leaf,) in enumerate(rows):
        nodes.append(bytes(leaf))
        while size & 1:
            right = nodes.pop()
            nodes[-1] = _node(nodes[-1], right)
            size >>= 1
    bind.execute(
        sa.text("UPDATE audit_head SET compact_range = :packed WHERE id = 1"),
        {"packed": b"".join(nodes)},
    )


def downgrade() -> None:
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("compact_range")
