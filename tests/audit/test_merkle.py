"""RFC 6962 Merkle proofs against the transparency-dev vectors and our own proofs; RFC 8785 JSON."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nqba.audit import merkle
from nqba.audit.merkle import (
    EMPTY_ROOT,
    CanonicalJSONError,
    ProofError,
    canonical_json,
    consistency_proof,
    decision_leaf,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from nqba.config import get_settings

_VECTORS = Path("audit") / "rfc6962-vectors"
MAX_SIZE = 40


def _vector_files(kind: str) -> list[str]:
    """Vector paths relative to the data folder, listed at collection time for parametrize."""
    root = get_settings().data_dir / _VECTORS / kind
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.json"))


def _load(data_dir: Path, kind: str, name: str) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads((data_dir / _VECTORS / kind / name).read_text())
    return vector


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(f"entry {i}".encode()) for i in range(n)]


@pytest.mark.realdata
@pytest.mark.parametrize("name", _vector_files("inclusion"))
def test_inclusion_vector_verifies_exactly_when_not_marked_wanterr(
    data_dir: Path, name: str
) -> None:
    v = _load(data_dir, "inclusion", name)
    args = (
        _b64(v["leafHash"]),
        v["leafIdx"],
        v["treeSize"],
        [_b64(p) for p in v["proof"] or []],
        _b64(v["root"]),
    )
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.realdata
@pytest.mark.parametrize("name", _vector_files("consistency"))
def test_consistency_vector_verifies_exactly_when_not_marked_wanterr(
    data_dir: Path, name: str
) -> None:
    v = _load(data_dir, "consistency", name)
    args = (
        v["size1"],
        v["size2"],
        _b64(v["root1"]),
        _b64(v["root2"]),
        [_b64(p) for p in v["proof"] or []],
    )
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


@pytest.mark.realdata
def test_vector_folders_hold_both_valid_and_invalid_proofs(data_dir: Path) -> None:
    for kind in ("inclusion", "consistency"):
        files = sorted((data_dir / _VECTORS / kind).rglob("*.json"))
        wants = {json.loads(f.read_text())["wantErr"] for f in files}
        assert wants == {True, False}, kind


def test_hashes_are_domain_separated_sha256() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert node_hash(b"L", b"R") == hashlib.sha256(b"\x01LR").digest()
    assert root_hash([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert root_hash([leaf_hash(b"a")]) == leaf_hash(b"a")


def test_roots_of_ct_reference_leaves_match_the_published_roots() -> None:
    # The eight leaves and roots of Certificate Transparency's reference Merkle tests.
    data = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    leaves = [leaf_hash(bytes.fromhex(d)) for d in data]
    assert [root_hash(leaves[:n]).hex() for n in range(1, 9)] == roots


def test_root_splits_at_largest_power_of_two_below_size() -> None:
    a, b, c = _leaves(3)
    assert root_hash([a, b, c]) == node_hash(node_hash(a, b), c)


def test_own_inclusion_proofs_verify_for_every_index_up_to_size_40() -> None:
    leaves = _leaves(MAX_SIZE)
    for size in range(1, MAX_SIZE + 1):
        tree = leaves[:size]
        root = root_hash(tree)
        for index in range(size):
            proof = inclusion_proof(index, tree)
            verify_inclusion(tree[index], index, size, proof, root)
            with pytest.raises(ProofError):
                verify_inclusion(leaf_hash(b"forged"), index, size, proof, root)
            if size > 1:
                with pytest.raises(ProofError):
                    verify_inclusion(tree[index], (index + 1) % size, size, proof, root)


def test_own_consistency_proofs_verify_for_every_old_size_up_to_40() -> None:
    leaves = _leaves(MAX_SIZE)
    roots = [root_hash(leaves[:n]) for n in range(MAX_SIZE + 1)]
    for size2 in range(1, MAX_SIZE + 1):
        for size1 in range(1, size2 + 1):
            proof = consistency_proof(size1, leaves[:size2])
            verify_consistency(size1, size2, roots[size1], roots[size2], proof)
            if size1 < size2:
                with pytest.raises(ProofError):
                    verify_consistency(size1, size2, roots[size1 - 1], roots[size2], proof)
                with pytest.raises(ProofError):
                    verify_consistency(size1, size2, roots[size1], roots[size2 - 1], proof)


def test_truncated_or_padded_proofs_are_rejected() -> None:
    leaves = _leaves(13)
    root = root_hash(leaves)
    proof = inclusion_proof(5, leaves)
    with pytest.raises(ProofError, match="shorter"):
        verify_inclusion(leaves[5], 5, 13, proof[:-1], root)
    with pytest.raises(ProofError, match="longer"):
        verify_inclusion(leaves[5], 5, 13, [*proof, root], root)
    cproof = consistency_proof(6, leaves)
    old = root_hash(leaves[:6])
    with pytest.raises(ProofError):
        verify_consistency(6, 13, old, root, cproof[:-1])
    with pytest.raises(ProofError):
        verify_consistency(6, 13, old, root, [*cproof, root])


def test_invalid_inputs_raise_proof_error_with_the_reason() -> None:
    leaves = _leaves(4)
    root = root_hash(leaves)
    with pytest.raises(ProofError, match="outside"):
        verify_inclusion(leaves[0], 4, 4, [], root)
    with pytest.raises(ProofError, match="non-negative"):
        verify_inclusion(leaves[0], -1, 4, [], root)
    with pytest.raises(ProofError, match="32-byte"):
        verify_inclusion(b"short", 0, 1, [], root)
    with pytest.raises(ProofError, match="proof\\[0\\]"):
        verify_inclusion(leaves[0], 0, 2, [b"short"], root)
    with pytest.raises(ProofError, match="larger"):
        verify_consistency(3, 2, root, root, [])
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 4, EMPTY_ROOT, root, [])
    with pytest.raises(ProofError, match="outside"):
        inclusion_proof(4, leaves)
    with pytest.raises(ProofError):
        consistency_proof(0, leaves)
    with pytest.raises(ProofError):
        consistency_proof(5, leaves)


def test_changing_any_leaf_changes_the_root() -> None:
    leaves = _leaves(9)
    root = root_hash(leaves)
    for i in range(len(leaves)):
        changed = list(leaves)
        changed[i] = leaf_hash(b"tampered")
        assert root_hash(changed) != root


def test_swapping_two_leaves_changes_the_root() -> None:
    leaves = _leaves(9)
    root = root_hash(leaves)
    for i in range(len(leaves)):
        for j in range(i + 1, len(leaves)):
            swapped = list(leaves)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            assert root_hash(swapped) != root


def test_dropping_a_leaf_changes_the_root() -> None:
    leaves = _leaves(9)
    root = root_hash(leaves)
    for i in range(len(leaves)):
        assert root_hash(leaves[:i] + leaves[i + 1 :]) != root


def test_canonical_json_sorts_keys_without_whitespace() -> None:
    assert canonical_json({"b": 1, "a": [True, None, False], "c": "x"}) == (
        b'{"a":[true,null,false],"b":1,"c":"x"}'
    )
    assert canonical_json({"b": 1, "a": 2}) == canonical_json({"a": 2, "b": 1})


def test_canonical_json_sorts_keys_by_utf16_code_units() -> None:
    # RFC 8785 section 3.2.3: U+1F600 (surrogates D83D DE00) sorts before U+FB33.
    obj = {k: i for i, k in enumerate(["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\x80", "ö"])}
    keys = list(json.loads(canonical_json(obj)))
    assert keys == ["\r", "1", "\x80", "ö", "\u20ac", "\U0001f600", "\ufb33"]


def test_canonical_json_writes_unicode_as_utf8_and_escapes_controls() -> None:
    assert canonical_json("é€\U0001f600") == '"é€\U0001f600"'.encode()
    assert canonical_json('\u20ac$\x0f\nA\'B"\\\\"/') == (
        b'"\xe2\x82\xac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"'
    )


def test_canonical_json_matches_rfc8785_sample_output() -> None:
    obj = {
        "numbers": [1e30, 4.50, 6, 2e-3, 0.000000000000000000000000001],
        "string": '\u20ac$\x0f\nA\'B"\\\\"/',
        "literals": [None, True, False],
    }
    assert canonical_json(obj) == (
        b'{"literals":[null,true,false],"numbers":[1e+30,4.5,6,0.002,1e-27],'
        b'"string":"\xe2\x82\xac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )


def test_canonical_json_nested_values_are_canonical_at_every_depth() -> None:
    a = {"z": {"y": [{"b": 2, "a": 1}], "x": (1, 2)}, "m": {}}
    b = {"m": {}, "z": {"x": [1, 2], "y": [{"a": 1, "b": 2}]}}
    assert canonical_json(a) == canonical_json(b) == b'{"m":{},"z":{"x":[1,2],"y":[{"a":1,"b":2}]}}'


def _double(bits: int) -> float:
    """The IEEE 754 double with the given bit pattern (via a hex float literal)."""
    sign = "-" if bits >> 63 else ""
    exponent, mantissa = (bits >> 52) & 0x7FF, bits & ((1 << 52) - 1)
    if exponent == 0:
        return float.fromhex(f"{sign}0x0.{mantissa:013x}p-1022")
    return float.fromhex(f"{sign}0x1.{mantissa:013x}p{exponent - 1023}")


@pytest.mark.parametrize(
    ("bits", "text"),
    [
        (0x0000000000000000, "0"),
        (0x8000000000000000, "0"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7FEFFFFFFFFFFFFF, "1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44B52D02C7E14AF6, "1e+23"),
        (0x444B1AE4D6E2EF4F, "999999999999999900000"),
        (0x444B1AE4D6E2EF50, "1e+21"),
        (0x3EB0C6F7A0B5ED8C, "9.999999999999997e-7"),
        (0x3EB0C6F7A0B5ED8D, "0.000001"),
        (0x41B3DE4355555554, "333333333.33333325"),
        (0xBECBF647612F3696, "-0.0000033333333333333333"),
        (0x43143FF3C1CB0959, "1424953923781206.2"),
    ],
)
def test_canonical_json_writes_floats_as_ecmascript_does(bits: int, text: str) -> None:
    # Samples from RFC 8785 Appendix B.
    assert canonical_json(_double(bits)) == text.encode()


def test_canonical_json_integers_are_exact_and_bools_are_not_numbers() -> None:
    assert canonical_json([2**64 + 1, -7, True]) == b"[18446744073709551617,-7,true]"
    assert canonical_json(1.0) == canonical_json(1) == b"1"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), {"x": [float("nan")]}])
def test_canonical_json_rejects_nan_and_infinity(bad: Any) -> None:
    with pytest.raises(CanonicalJSONError, match="no JSON form"):
        canonical_json(bad)


@pytest.mark.parametrize("bad", [{1: "a"}, b"bytes", {"a": {1, 2}}, "\ud800"])
def test_canonical_json_rejects_values_without_a_json_form(bad: Any) -> None:
    with pytest.raises(CanonicalJSONError):
        canonical_json(bad)


def test_decision_leaf_hashes_the_canonical_record() -> None:
    record = {"decision_id": "d-1", "unit": "energy", "cost": 12.5}
    reordered = {"cost": 12.5, "unit": "energy", "decision_id": "d-1"}
    expected = hashlib.sha256(b'\x00{"cost":12.5,"decision_id":"d-1","unit":"energy"}').digest()
    assert decision_leaf(record) == decision_leaf(reordered) == expected
    assert decision_leaf({**record, "cost": 12.6}) != expected


def test_compact_range_root_equals_the_rfc_6962_root_at_every_size() -> None:
    from nqba.audit.merkle import compact_append_nodes, compact_root, pack_nodes, unpack_nodes

    leaves = [leaf_hash(bytes([i])) for i in range(200)]
    nodes: list[bytes] = []
    assert compact_root(nodes) == root_hash([])
    for size, leaf in enumerate(leaves):
        nodes = compact_append_nodes(nodes, size, leaf)[0]
        assert len(nodes) == bin(size + 1).count("1")
        assert compact_root(nodes) == root_hash(leaves[: size + 1])
        assert unpack_nodes(pack_nodes(nodes)) == nodes


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_the_fixed_point_float_path_agrees_with_the_ecmascript_layout(x: float) -> None:
    assert merkle._float(x) == merkle._number(x)


def _reference_json(obj: Any) -> str:
    """RFC 8785 written the slow, obvious way: every key sorted on its UTF-16 code units."""
    if isinstance(obj, dict):
        keys = sorted(obj, key=lambda k: k.encode("utf-16-be"))
        return (
            "{"
            + ",".join(
                f"{json.dumps(k, ensure_ascii=False)}:{_reference_json(obj[k])}" for k in keys
            )
            + "}"
        )
    if isinstance(obj, list):
        return "[" + ",".join(_reference_json(v) for v in obj) + "]"
    if isinstance(obj, float):
        return merkle._number(obj)
    return json.dumps(obj, ensure_ascii=False)


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=["Cs"]), max_size=4), inner, max_size=4
        )
    ),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(_JSON_VALUES)
def test_canonical_json_matches_a_reference_writer(obj: Any) -> None:
    assert canonical_json(obj) == _reference_json(obj).encode("utf-8")


def _stored_tree(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every node a log stores as it grows: the leaves, and inner nodes as they complete."""
    nodes: dict[tuple[int, int], bytes] = {}
    compact: list[bytes] = []
    for size, leaf in enumerate(leaves):
        nodes[(0, size)] = leaf
        compact, completed = merkle.compact_append_nodes(compact, size, leaf)
        nodes.update(completed)
    return nodes


def test_stored_nodes_give_the_same_roots_and_proofs_as_the_leaves() -> None:
    leaves = [leaf_hash(f"leaf {i}".encode()) for i in range(MAX_SIZE)]
    nodes = _stored_tree(leaves)
    for size in range(1, MAX_SIZE + 1):
        # the inner nodes complete so far: size - popcount(size) of them
        inner = [k for k in _stored_tree(leaves[:size]) if k[0] > 0]
        assert len(inner) == size - bin(size).count("1")
        assert merkle.root_from_nodes(size, nodes) == root_hash(leaves[:size])
        assert merkle.root_nodes(size) <= nodes.keys()
        for m in range(size):
            needed = merkle.inclusion_nodes(m, size)
            only = {k: nodes[k] for k in needed}
            assert merkle.inclusion_proof_from_nodes(m, size, only) == inclusion_proof(
                m, leaves[:size]
            )
        for old in range(1, size + 1):
            needed = merkle.consistency_nodes(old, size)
            only = {k: nodes[k] for k in needed}
            assert merkle.consistency_proof_from_nodes(old, size, only) == consistency_proof(
                old, leaves[:size]
            )


def test_proofs_need_few_nodes_in_a_large_tree() -> None:
    size = 1_000_003
    assert len(merkle.inclusion_nodes(123_456, size)) <= 2 * size.bit_length()
    assert len(merkle.consistency_nodes(654_321, size)) <= 2 * size.bit_length()
    assert len(merkle.root_nodes(size)) == bin(size).count("1")


def test_a_missing_node_is_a_proof_error() -> None:
    leaves = [leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")]
    nodes = _stored_tree(leaves)
    del nodes[(1, 0)]
    with pytest.raises(ProofError, match=r"node \(1, 0\)"):
        merkle.inclusion_proof_from_nodes(2, 3, nodes)
