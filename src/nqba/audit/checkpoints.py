"""Ed25519-signed checkpoints of the audit log, in the C2SP signed-note checkpoint format.

A checkpoint states "the log called <origin> had <tree_size> leaves with this root". The
signed message is the note body of a C2SP tlog-checkpoint::

    <origin>\\n<tree_size>\\n<base64 root hash>\\n

and the signature is Ed25519 over exactly those bytes, so :func:`signed_note` renders a note
that C2SP note verifiers (e.g. golang.org/x/mod/sumdb/note with :func:`note_verifier_key`)
accept. ``key_id`` is our own short name of the key: the first 8 bytes (hex) of SHA-256 of the
32-byte raw public key. Verification needs only the public key: see :func:`verify_checkpoint`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from nqba.audit.errors import AuditKeyError, CheckpointError
from nqba.audit.merkle import HASH_SIZE
from nqba.config import PLACEHOLDER_SECRET, Settings

SEED_SIZE = 32
"""Bytes of an Ed25519 private key seed (and of a raw public key)."""

SIGNATURE_SIZE = 64
"""Bytes of an Ed25519 signature."""

_DEV_KEY_LABEL = b"nqba development audit signing key\x00"
_NOTE_ED25519 = b"\x01"  # C2SP signed-note signature type of Ed25519


class CheckpointLike(Protocol):
    """What a checkpoint holds: a stored ``AuditCheckpoint`` row or a :class:`SignedCheckpoint`."""

    @property
    def tree_size(self) -> int: ...
    @property
    def root_hash(self) -> bytes: ...
    @property
    def origin(self) -> str: ...
    @property
    def key_id(self) -> str: ...
    @property
    def signature(self) -> bytes: ...


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint with its signature, detached from the database."""

    tree_size: int
    root_hash: bytes
    origin: str
    key_id: str
    signature: bytes
    created_at: datetime | None = None

    @classmethod
    def of(cls, checkpoint: CheckpointLike, created_at: datetime | None = None) -> SignedCheckpoint:
        """A detached copy of any checkpoint (a stored row included)."""
        return cls(
            tree_size=checkpoint.tree_size,
            root_hash=bytes(checkpoint.root_hash),
            origin=checkpoint.origin,
            key_id=checkpoint.key_id,
            signature=bytes(checkpoint.signature),
            created_at=created_at,
        )


def checkpoint_note(origin: str, tree_size: int, root_hash: bytes) -> bytes:
    """The signed message: the C2SP checkpoint body ``origin``, size and base64 root, each + LF."""
    if not origin or "\n" in origin:
        raise CheckpointError(f"origin must be one non-empty line, got {origin!r}")
    if tree_size < 0:
        raise CheckpointError(f"tree size must be non-negative, got {tree_size}")
    if len(root_hash) != HASH_SIZE:
        raise CheckpointError(f"root hash must be {HASH_SIZE} bytes, got {len(root_hash)}")
    root = base64.b64encode(root_hash).decode("ascii")
    return f"{origin}\n{tree_size}\n{root}\n".encode()


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id_of(public_key: bytes | Ed25519PublicKey) -> str:
    """Our name of a key: the first 8 bytes (16 hex digits) of SHA-256 of the raw public key."""
    raw = public_key if isinstance(public_key, bytes) else raw_public_key(public_key)
    return hashlib.sha256(raw).digest()[:8].hex()


def load_public_key(public_key: bytes | str | Ed25519PublicKey) -> Ed25519PublicKey:
    """An Ed25519 public key from its 32 raw bytes or their base64; AuditKeyError otherwise."""
    if isinstance(public_key, Ed25519PublicKey):
        return public_key
    raw = public_key
    if isinstance(raw, str):
        try:
            raw = base64.b64decode(raw.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise AuditKeyError("public key is not base64") from None
    if len(raw) != SEED_SIZE:
        raise AuditKeyError(f"an Ed25519 public key has {SEED_SIZE} bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def _note_key_hash(name: str, raw_public: bytes) -> bytes:
    """C2SP signed-note key hash: SHA-256(name || LF || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + _NOTE_ED25519 + raw_public).digest()[:4]


def note_verifier_key(origin: str, public_key: bytes | Ed25519PublicKey) -> str:
    """The C2SP verifier key ``<name>+<hex key hash>+<base64(0x01 || key)>`` for the origin."""
    raw = public_key if isinstance(public_key, bytes) else raw_public_key(public_key)
    encoded = base64.b64encode(_NOTE_ED25519 + raw).decode("ascii")
    return f"{origin}+{_note_key_hash(origin, raw).hex()}+{encoded}"


def signed_note(checkpoint: CheckpointLike, public_key: bytes | Ed25519PublicKey) -> str:
    """The checkpoint as a C2SP signed note: body, blank line, one ``— <origin> <sig>`` line."""
    raw = public_key if isinstance(public_key, bytes) else raw_public_key(public_key)
    body = checkpoint_note(checkpoint.origin, checkpoint.tree_size, checkpoint.root_hash)
    blob = base64.b64encode(_note_key_hash(checkpoint.origin, raw) + checkpoint.signature)
    return f"{body.decode()}\n\u2014 {checkpoint.origin} {blob.decode('ascii')}\n"


def verify_checkpoint(
    public_key: bytes | str | Ed25519PublicKey, checkpoint: CheckpointLike
) -> None:
    """Check ``checkpoint``'s signature with ``public_key`` (raw bytes, base64 or a key object).

    Works offline: nothing but the key and the checkpoint is needed. Returns None when the
    checkpoint verifies; raises CheckpointError saying what failed (another key's id, a
    malformed field, or a signature that does not match size, root and origin).
    """
    key = load_public_key(public_key)
    expected_id = key_id_of(key)
    if checkpoint.key_id != expected_id:
        raise CheckpointError(
            f"checkpoint at size {checkpoint.tree_size} names key {checkpoint.key_id}, "
            f"not {expected_id}"
        )
    if len(checkpoint.signature) != SIGNATURE_SIZE:
        raise CheckpointError(
            f"checkpoint at size {checkpoint.tree_size}: signature has "
            f"{len(checkpoint.signature)} bytes, not {SIGNATURE_SIZE}"
        )
    message = checkpoint_note(checkpoint.origin, checkpoint.tree_size, checkpoint.root_hash)
    try:
        key.verify(bytes(checkpoint.signature), message)
    except InvalidSignature:
        raise CheckpointError(
            f"checkpoint at size {checkpoint.tree_size}: the Ed25519 signature does not match "
            f"its origin, size and root hash (key {expected_id})"
        ) from None


def decode_seed(value: str) -> bytes:
    """The 32-byte Ed25519 seed in the base64 text ``value``; AuditKeyError otherwise."""
    try:
        seed = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise AuditKeyError(
            "NQBA_AUDIT_SIGNING_KEY must be the base64 of a 32-byte Ed25519 seed; it is not "
            "base64 (make one with `nqba audit keygen`)"
        ) from None
    if len(seed) != SEED_SIZE:
        raise AuditKeyError(
            f"NQBA_AUDIT_SIGNING_KEY must be the base64 of a {SEED_SIZE}-byte Ed25519 seed; "
            f"it decodes to {len(seed)} bytes (make one with `nqba audit keygen`)"
        )
    return seed


def _seed_from_settings(settings: Settings) -> bytes:
    """The 32-byte seed of the signing key: the configured one, or the development key."""
    value = settings.audit_signing_key
    if value == PLACEHOLDER_SECRET and settings.environment == "development":
        return hashlib.sha256(_DEV_KEY_LABEL + settings.secret_key.encode()).digest()
    return decode_seed(value)


class CheckpointSigner:
    """Signs checkpoints of one log (its origin) with one Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey, origin: str) -> None:
        checkpoint_note(origin, 0, bytes(HASH_SIZE))  # refuses an origin that is not one line
        self._private_key = private_key
        self.origin = origin
        self.public_key = private_key.public_key()
        self.public_key_raw = raw_public_key(self.public_key)
        self.key_id = key_id_of(self.public_key_raw)

    @classmethod
    def from_settings(cls, settings: Settings) -> CheckpointSigner:
        """The signer configured by ``audit_signing_key`` and ``audit_log_origin``.

        ``audit_signing_key`` is the base64 of a 32-byte Ed25519 seed. In development, while
        it still holds the placeholder, the seed is SHA-256 of a fixed label and
        ``secret_key``: a fixed development key that is NOT secret (anyone who knows the
        development secret_key can sign). Outside development the settings refuse the
        placeholder, so this fallback never applies there.
        """
        return cls.from_seed(_seed_from_settings(settings), settings.audit_log_origin)

    @classmethod
    def from_seed(cls, seed: bytes, origin: str) -> CheckpointSigner:
        """The signer of the 32-byte Ed25519 ``seed`` for the log called ``origin``."""
        return cls(Ed25519PrivateKey.from_private_bytes(seed), origin)

    @property
    def public_key_b64(self) -> str:
        """The raw public key, base64: what an auditor needs to verify checkpoints offline."""
        return base64.b64encode(self.public_key_raw).decode("ascii")

    def sign(self, tree_size: int, root_hash: bytes) -> SignedCheckpoint:
        """A checkpoint of ``tree_size`` leaves with ``root_hash``, signed now."""
        signature = self._private_key.sign(checkpoint_note(self.origin, tree_size, root_hash))
        return SignedCheckpoint(tree_size, root_hash, self.origin, self.key_id, signature)


def generate_signing_key() -> str:
    """A fresh random signing key seed, base64: a value for NQBA_AUDIT_SIGNING_KEY."""
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    return base64.b64encode(seed).decode("ascii")
