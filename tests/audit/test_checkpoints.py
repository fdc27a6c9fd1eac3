"""Ed25519 checkpoints: the C2SP note body, key ids, signing and offline verification."""

from __future__ import annotations

import base64
import dataclasses
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nqba.audit.checkpoints import (
    CheckpointSigner,
    SignedCheckpoint,
    checkpoint_note,
    decode_seed,
    generate_signing_key,
    key_id_of,
    load_public_key,
    note_verifier_key,
    signed_note,
    verify_checkpoint,
)
from nqba.audit.errors import AuditKeyError, CheckpointError
from nqba.audit.merkle import EMPTY_ROOT, leaf_hash, root_hash
from nqba.config import PLACEHOLDER_SECRET, Settings
from tests.support.platform import TEST_SIGNING_KEY

ROOT = root_hash([leaf_hash(f"entry {i}".encode()) for i in range(7)])


def _signer(seed: bytes = b"\x01" * 32, origin: str = "example.test/log") -> CheckpointSigner:
    return CheckpointSigner.from_seed(seed, origin)


def test_note_is_the_c2sp_checkpoint_body_origin_size_and_base64_root() -> None:
    note = checkpoint_note("example.test/log", 7, ROOT)
    assert note == b"example.test/log\n7\n" + base64.b64encode(ROOT) + b"\n"


def test_note_refuses_a_multi_line_origin_and_a_short_root() -> None:
    with pytest.raises(CheckpointError, match="one non-empty line"):
        checkpoint_note("a\nb", 1, ROOT)
    with pytest.raises(CheckpointError, match="32 bytes"):
        checkpoint_note("o", 1, ROOT[:31])


def test_key_id_is_first_8_bytes_hex_of_sha256_of_the_raw_public_key() -> None:
    signer = _signer()
    assert signer.key_id == hashlib.sha256(signer.public_key_raw).digest()[:8].hex()
    assert key_id_of(signer.public_key) == signer.key_id
    assert len(signer.key_id) == 16


def test_signed_checkpoint_verifies_offline_with_the_public_key_alone() -> None:
    signer = _signer()
    checkpoint = signer.sign(7, ROOT)
    assert checkpoint.key_id == signer.key_id
    Ed25519PrivateKey.from_private_bytes(b"\x01" * 32).public_key().verify(
        checkpoint.signature, checkpoint_note("example.test/log", 7, ROOT)
    )
    verify_checkpoint(signer.public_key_raw, checkpoint)
    verify_checkpoint(signer.public_key_b64, checkpoint)
    verify_checkpoint(signer.public_key, checkpoint)


@pytest.mark.parametrize(
    "change",
    [
        {"root_hash": EMPTY_ROOT},
        {"tree_size": 8},
        {"origin": "other.test/log"},
        {"signature": bytes(64)},
    ],
    ids=["root", "size", "origin", "signature"],
)
def test_checkpoint_with_a_changed_field_fails_verification(change: dict[str, object]) -> None:
    signer = _signer()
    forged = dataclasses.replace(signer.sign(7, ROOT), **change)  # type: ignore[arg-type]
    with pytest.raises(CheckpointError, match="signature does not match"):
        verify_checkpoint(signer.public_key_raw, forged)


def test_checkpoint_of_another_key_is_refused_by_key_id() -> None:
    mine, theirs = _signer(b"\x01" * 32), _signer(b"\x02" * 32)
    with pytest.raises(CheckpointError, match=f"names key {theirs.key_id}, not {mine.key_id}"):
        verify_checkpoint(mine.public_key_raw, theirs.sign(7, ROOT))
    relabelled = dataclasses.replace(theirs.sign(7, ROOT), key_id=mine.key_id)
    with pytest.raises(CheckpointError, match="signature does not match"):
        verify_checkpoint(mine.public_key_raw, relabelled)


def test_truncated_signature_is_refused_with_its_length() -> None:
    signer = _signer()
    checkpoint = signer.sign(7, ROOT)
    short = dataclasses.replace(checkpoint, signature=checkpoint.signature[:63])
    with pytest.raises(CheckpointError, match="63 bytes"):
        verify_checkpoint(signer.public_key_raw, short)


def test_signed_note_carries_the_c2sp_key_hash_and_signature() -> None:
    signer = _signer()
    checkpoint = signer.sign(7, ROOT)
    note = signed_note(checkpoint, signer.public_key_raw)
    body, _, signature_line = note.partition("\n\n")
    assert body + "\n" == checkpoint_note("example.test/log", 7, ROOT).decode()
    dash, name, blob = signature_line.strip().split(" ")
    assert (dash, name) == ("\u2014", "example.test/log")
    raw = base64.b64decode(blob)
    key_hash = hashlib.sha256(b"example.test/log\n\x01" + signer.public_key_raw).digest()[:4]
    assert raw[:4] == key_hash
    assert raw[4:] == checkpoint.signature
    vkey = note_verifier_key("example.test/log", signer.public_key_raw)
    assert vkey.split("+") == [
        "example.test/log",
        key_hash.hex(),
        base64.b64encode(b"\x01" + signer.public_key_raw).decode(),
    ]


def test_configured_key_is_the_base64_seed() -> None:
    settings = Settings(environment="test", secret_key="s" * 40, audit_signing_key=TEST_SIGNING_KEY)
    signer = CheckpointSigner.from_settings(settings)
    expected = Ed25519PrivateKey.from_private_bytes(base64.b64decode(TEST_SIGNING_KEY))
    assert signer.public_key_raw == _signer(base64.b64decode(TEST_SIGNING_KEY)).public_key_raw
    assert signer.key_id == key_id_of(expected.public_key())
    assert signer.origin == settings.audit_log_origin


def test_development_placeholder_derives_a_fixed_key_from_the_secret_key() -> None:
    one = Settings(environment="development", audit_signing_key=PLACEHOLDER_SECRET)
    again = Settings(environment="development", audit_signing_key=PLACEHOLDER_SECRET)
    other = Settings(
        environment="development", audit_signing_key=PLACEHOLDER_SECRET, secret_key="other"
    )
    key_one = CheckpointSigner.from_settings(one).key_id
    assert key_one == CheckpointSigner.from_settings(again).key_id
    assert key_one != CheckpointSigner.from_settings(other).key_id


@pytest.mark.parametrize(
    ("value", "words"),
    [("not base64 !!", "not base64"), (base64.b64encode(b"x" * 16).decode(), "16 bytes")],
)
def test_bad_signing_key_is_refused_with_the_reason(value: str, words: str) -> None:
    settings = Settings(environment="development", audit_signing_key=value)
    with pytest.raises(AuditKeyError, match=words):
        CheckpointSigner.from_settings(settings)


def test_generated_key_is_a_usable_seed() -> None:
    seed = generate_signing_key()
    assert len(decode_seed(seed)) == 32
    assert seed != generate_signing_key()


def test_public_key_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(AuditKeyError, match="32 bytes"):
        load_public_key(base64.b64encode(b"k" * 31).decode())
    with pytest.raises(AuditKeyError, match="not base64"):
        load_public_key("%%%")


def test_signed_checkpoint_copies_a_stored_row() -> None:
    checkpoint = _signer().sign(3, ROOT)
    copy = SignedCheckpoint.of(checkpoint)
    assert copy == checkpoint
