"""Response bodies of the audit API: the public key, checkpoints, leaves and proofs.

Hashes are hex; the public key and signatures are base64 (as in C2SP signed notes).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from nqba.audit.checkpoints import CheckpointLike, checkpoint_note, signed_note

_HASH = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
_SIBLING = "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"
_ROOT_B64 = base64.b64encode(bytes.fromhex(_HASH)).decode()
_NOTE = f"nqba.local/audit\n8\n{_ROOT_B64}\n"


class PublicKeyResponse(BaseModel):
    """The key that signs the log's checkpoints: enough to verify them offline."""

    algorithm: Literal["Ed25519"] = "Ed25519"
    key_id: str = Field(
        description="First 8 bytes (hex) of SHA-256 of the raw public key.",
        examples=["3f1c2a9b7d0e4f51"],
    )
    public_key: str = Field(
        description="The 32-byte raw Ed25519 public key, base64.",
        examples=["Q2+bT0pGZ0b7t1o1r4Yv2m8mB4mQk3n9l7oXW2f0C8A="],
    )
    origin: str = Field(
        description="The log's name in its checkpoints.", examples=["nqba.local/audit"]
    )
    note_verifier_key: str = Field(
        description="The key as a C2SP signed-note verifier key (<name>+<hash>+<key>).",
        examples=["nqba.local/audit+1a2b3c4d+AUNvm09KRmdG+7daNa+GL9pvJgeJkJN5/Ze6F1tn9AvA"],
    )


class CheckpointResponse(BaseModel):
    """A signed statement of the log's size and root hash."""

    tree_size: int = Field(
        description="Leaves the checkpoint covers (seq 0..tree_size-1).", examples=[8]
    )
    root_hash: str = Field(description="RFC 6962 root of those leaves, hex.", examples=[_HASH])
    origin: str = Field(examples=["nqba.local/audit"])
    key_id: str = Field(examples=["3f1c2a9b7d0e4f51"])
    signature: str = Field(
        description="Ed25519 signature of `note`, base64.",
        examples=[
            "mQ2yZ1f4b0d8Qm7cX2nJr5e9bW1kT3aH8sV6uP0oL4iG2fE7dC9bA5zY1xW3vU8tS6rQ4pO2nM0lK8jI6hG4fA=="
        ],
    )
    note: str = Field(
        description="The signed message: C2SP checkpoint body <origin>, <size>, <base64 root>.",
        examples=[_NOTE],
    )
    signed_note: str = Field(
        description="The checkpoint as a C2SP signed note (body, blank line, signature line).",
        examples=[_NOTE + "\n\u2014 nqba.local/audit GjcM3mQ2yZ1f...\n"],
    )
    created_at: datetime | None = Field(default=None, examples=["2026-11-25T10:00:00Z"])

    @classmethod
    def of(
        cls, checkpoint: CheckpointLike, public_key: bytes, created_at: datetime | None = None
    ) -> CheckpointResponse:
        """The response for a stored or freshly signed checkpoint."""
        note = checkpoint_note(checkpoint.origin, checkpoint.tree_size, checkpoint.root_hash)
        return cls(
            tree_size=checkpoint.tree_size,
            root_hash=bytes(checkpoint.root_hash).hex(),
            origin=checkpoint.origin,
            key_id=checkpoint.key_id,
            signature=base64.b64encode(bytes(checkpoint.signature)).decode("ascii"),
            note=note.decode(),
            signed_note=signed_note(checkpoint, public_key),
            created_at=created_at,
        )


class InclusionProofResponse(BaseModel):
    """Proof that leaf ``seq`` is in the tree of ``tree_size`` leaves with ``root_hash``.

    Check with ``nqba.audit.merkle.verify_inclusion(leaf_hash, seq, tree_size, proof,
    root_hash)``; compare ``root_hash`` with a signed checkpoint of that size.
    """

    seq: int = Field(examples=[5])
    tree_size: int = Field(examples=[8])
    leaf_hash: str = Field(description="SHA-256(0x00 || payload), hex.", examples=[_SIBLING])
    root_hash: str = Field(
        description="Root of the tree of tree_size leaves, hex.", examples=[_HASH]
    )
    proof: list[str] = Field(
        description="Sibling hashes, hex, from the leaf up (RFC 6962 audit path).",
        examples=[[_SIBLING, _HASH]],
    )
    checkpoint: CheckpointResponse | None = Field(
        description="The signed checkpoint of tree_size, when one was signed at that size."
    )


class ConsistencyProofResponse(BaseModel):
    """Proof that the tree of ``first`` leaves is a prefix of the tree of ``second`` leaves.

    Check with ``nqba.audit.merkle.verify_consistency(first, second, first_root,
    second_root, proof)``.
    """

    first: int = Field(examples=[4])
    second: int = Field(examples=[8])
    first_root: str = Field(examples=[_SIBLING])
    second_root: str = Field(examples=[_HASH])
    proof: list[str] = Field(description="RFC 6962 consistency proof, hex.", examples=[[_HASH]])
    first_checkpoint: CheckpointResponse | None = Field(
        description="The signed checkpoint of size first, when there is one."
    )
    second_checkpoint: CheckpointResponse | None = Field(
        description="The signed checkpoint of size second, when there is one."
    )


class LeafResponse(BaseModel):
    """One leaf of the log, its payload, and its inclusion proof."""

    seq: int = Field(examples=[5])
    leaf_hash: str = Field(description="SHA-256(0x00 || payload), hex.", examples=[_SIBLING])
    payload: str = Field(
        description="The canonical JSON (RFC 8785) text exactly as hashed.",
        examples=['{"decision_id":"0b7e...","type":"nqba.decision/v1","unit":"finance"}'],
    )
    record: Any = Field(
        default=None, description="The payload parsed as JSON (null if it does not parse)."
    )
    organisation_id: str = Field(examples=["6f0c6a55-2d55-4b1f-9d0e-6b8f3f4c1a20"])
    decision_id: str | None = Field(examples=["0b7e3c1d-8a4f-4e0a-9a3c-1f2e3d4c5b6a"])
    created_at: datetime = Field(examples=["2026-11-25T10:00:00Z"])
    inclusion: InclusionProofResponse | None = Field(
        description="Inclusion in the latest checkpoint (or the tree_size asked for)."
    )
    inclusion_unavailable: str | None = Field(
        default=None,
        description="Why there is no inclusion proof (no signed checkpoint covers the leaf yet).",
        examples=[None],
    )


def parse_payload(payload: str) -> Any:
    """The payload as JSON, or None when it does not parse."""
    try:
        return json.loads(payload)
    except ValueError:
        return None
