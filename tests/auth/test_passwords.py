"""Argon2id hashing, the password rules and generated passwords."""

from __future__ import annotations

import pytest

from nqba.auth.errors import InvalidInputError
from nqba.auth.passwords import (
    MAX_PASSWORD_LENGTH,
    check_password_strength,
    generate_password,
    hash_password,
    needs_rehash,
    verify_password,
)


def test_hash_is_argon2id_salted_and_verifies_only_the_same_password() -> None:
    first, second = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert first.startswith("$argon2id$")
    assert first != second  # a fresh salt each time
    assert verify_password(first, "correct horse battery")
    assert not verify_password(first, "correct horse batterz")
    assert not needs_rehash(first)


def test_malformed_hash_verifies_nothing_instead_of_raising() -> None:
    assert not verify_password("not-a-hash", "correct horse battery")


@pytest.mark.parametrize(
    ("password", "words"),
    [
        ("short", "at least 12"),
        ("x" * (MAX_PASSWORD_LENGTH + 1), "at most"),
        (" " * 20, "only spaces"),
        ("abababababababab", "4 different"),
        ("Ada@Example.com", "email"),
    ],
)
def test_weak_passwords_are_refused_with_the_rule_they_break(password: str, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        check_password_strength(password, "ada@example.com")


def test_generated_passwords_are_long_distinct_and_pass_the_rules() -> None:
    passwords = {generate_password() for _ in range(20)}
    assert len(passwords) == 20
    for password in passwords:
        assert len(password) >= 32
        check_password_strength(password)
