"""RFC 6962 Merkle tree hashing, inclusion and consistency proofs, and RFC 8785 canonical JSON.

Pure functions over bytes: no storage, no I/O. The log stores leaf hashes in append order; a
root commits to all of them, and the proofs let a client check one leaf or an older root
against a newer root without seeing the whole log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from json.encoder import encode_basestring as _encode_string
from typing import Any

HASH_SIZE = 32
"""Length in bytes of every leaf, node and root hash (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root of the empty tree: SHA-256 of the empty string (RFC 6962 section 2.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class ProofError(ValueError):
    """A proof, or the sizes, index or hashes given with it, does not verify."""


class CanonicalJSONError(ValueError):
    """A value has no RFC 8785 canonical form (NaN, infinity, a non-string key, ...)."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one log entry, domain-separated from inner nodes."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an inner node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH of leaves[lo:hi] for hi > lo, without copying the slice."""
    n = hi - lo
    if n == 1:
        return leaves[lo]
    k = _split(n)
    return node_hash(_subtree_root(leaves, lo, lo + k), _subtree_root(leaves, lo + k, hi))


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash (MTH) of the given leaf hashes; EMPTY_ROOT for no leaves."""
    if not leaf_hashes:
        return EMPTY_ROOT
    return _subtree_root(leaf_hashes, 0, len(leaf_hashes))


Subtree = Callable[[int, int], bytes]
"""MTH of the leaves lo..hi-1 of some tree, for hi > lo: from its leaves or its stored nodes."""

NodeKey = tuple[int, int]
"""(level, index): the perfect subtree over leaves index * 2**level .. (index + 1) * 2**level - 1;
level 0 is the leaf ``index`` itself."""


def _path(m: int, subtree: Subtree, lo: int, hi: int) -> list[bytes]:
    """PATH(m, D[lo:hi]) of RFC 6962 section 2.1.1, for lo <= lo + m < hi."""
    n = hi - lo
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, subtree, lo, lo + k), subtree(lo + k, hi)]
    return [*_path(m - k, subtree, lo + k, hi), subtree(lo, lo + k)]


def _subproof(m: int, subtree: Subtree, lo: int, hi: int, whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[lo:hi], b) of RFC 6962 section 2.1.2, for 0 < m <= hi - lo."""
    n = hi - lo
    if m == n:
        return [] if whole else [subtree(lo, hi)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, subtree, lo, lo + k, whole), subtree(lo + k, hi)]
    return [*_subproof(m - k, subtree, lo + k, hi, False), subtree(lo, lo + k)]


def _check_index(index: int, size: int) -> None:
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")


def _check_old_size(old_size: int, size: int) -> None:
    if not 0 < old_size <= size:
        raise ProofError(f"old size {old_size} is not in 1..{size} (the new tree's size)")


def _from_leaves(leaves: Sequence[bytes]) -> Subtree:
    return lambda lo, hi: _subtree_root(leaves, lo, hi)


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Audit path for leaf `index` in the tree of `leaf_hashes`, lowest sibling first."""
    size = len(leaf_hashes)
    _check_index(index, size)
    return _path(index, _from_leaves(leaf_hashes), 0, size)


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Proof that the tree of the first `old_size` leaves is a prefix of the whole tree.

    Defined for 0 < old_size <= len(leaf_hashes); equal sizes give the empty proof. A proof
    from the empty tree is meaningless (every tree extends it) and is refused.
    """
    size = len(leaf_hashes)
    _check_old_size(old_size, size)
    return _subproof(old_size, _from_leaves(leaf_hashes), 0, size, True)


# --- proofs from stored perfect-subtree nodes: O(log^2 n) nodes instead of n leaves --------


def _is_perfect(lo: int, hi: int) -> bool:
    n = hi - lo
    return n & (n - 1) == 0 and lo % n == 0


def _pieces(lo: int, hi: int, out: set[NodeKey]) -> None:
    """Add the perfect subtrees whose hashes make up MTH(D[lo:hi]) (RFC 6962 splits)."""
    if _is_perfect(lo, hi):
        level = (hi - lo).bit_length() - 1
        out.add((level, lo >> level))
        return
    k = _split(hi - lo)
    _pieces(lo, lo + k, out)
    _pieces(lo + k, hi, out)


def _recorder(out: set[NodeKey]) -> Subtree:
    def subtree(lo: int, hi: int) -> bytes:
        _pieces(lo, hi, out)
        return b""

    return subtree


def _from_nodes(nodes: Mapping[NodeKey, bytes]) -> Subtree:
    def subtree(lo: int, hi: int) -> bytes:
        if _is_perfect(lo, hi):
            level = (hi - lo).bit_length() - 1
            try:
                return nodes[(level, lo >> level)]
            except KeyError:
                what = f"leaf {lo}" if level == 0 else f"node {(level, lo >> level)}"
                raise ProofError(f"{what} of the tree is missing") from None
        k = _split(hi - lo)
        return node_hash(subtree(lo, lo + k), subtree(lo + k, hi))

    return subtree


def root_nodes(size: int) -> set[NodeKey]:
    """The stored nodes that the root of the tree of ``size`` leaves is computed from."""
    out: set[NodeKey] = set()
    if size:
        _pieces(0, size, out)
    return out


def root_from_nodes(size: int, nodes: Mapping[NodeKey, bytes]) -> bytes:
    """The root of the tree of ``size`` leaves from (at least) its :func:`root_nodes`."""
    return _from_nodes(nodes)(0, size) if size else EMPTY_ROOT


def inclusion_nodes(index: int, size: int) -> set[NodeKey]:
    """The stored nodes that leaf ``index``'s audit path in a tree of ``size`` is made of."""
    _check_index(index, size)
    out: set[NodeKey] = set()
    _path(index, _recorder(out), 0, size)
    return out


def inclusion_proof_from_nodes(
    index: int, size: int, nodes: Mapping[NodeKey, bytes]
) -> list[bytes]:
    """:func:`inclusion_proof` from (at least) the :func:`inclusion_nodes` of the tree."""
    _check_index(index, size)
    return _path(index, _from_nodes(nodes), 0, size)


def consistency_nodes(old_size: int, size: int) -> set[NodeKey]:
    """The stored nodes that the consistency proof from ``old_size`` to ``size`` is made of."""
    _check_old_size(old_size, size)
    out: set[NodeKey] = set()
    _subproof(old_size, _recorder(out), 0, size, True)
    return out


def consistency_proof_from_nodes(
    old_size: int, size: int, nodes: Mapping[NodeKey, bytes]
) -> list[bytes]:
    """:func:`consistency_proof` from (at least) the :func:`consistency_nodes` of the tree."""
    _check_old_size(old_size, size)
    return _subproof(old_size, _from_nodes(nodes), 0, size, True)


def compact_append_nodes(
    nodes: Sequence[bytes], size: int, leaf: bytes
) -> tuple[list[bytes], list[tuple[NodeKey, bytes]]]:
    """The compact range of the tree of ``size + 1`` leaves, from that of ``size`` leaves, and
    the inner nodes the new leaf completes, as ``((level, index), hash)``.

    A compact range is the list of perfect-subtree roots that make up a tree, largest first
    (one per set bit of the size), so appending costs O(log n) hashes and no leaf reads. The
    node completed at level L has index ``size >> L``; storing these as they complete keeps
    every inner node of the tree (one per append on average).
    """
    out = [*nodes, leaf]
    completed: list[tuple[NodeKey, bytes]] = []
    s = size
    level = 0
    while s & 1:
        right = out.pop()
        out[-1] = node_hash(out[-1], right)
        s >>= 1
        level += 1
        completed.append(((level, size >> level), out[-1]))
    return out, completed


def compact_root(nodes: Sequence[bytes]) -> bytes:
    """The RFC 6962 root of the tree whose compact range is ``nodes``."""
    if not nodes:
        return EMPTY_ROOT
    root = nodes[-1]
    for node in reversed(nodes[:-1]):
        root = node_hash(node, root)
    return root


def pack_nodes(nodes: Sequence[bytes]) -> bytes:
    """The compact range as one byte string (32 bytes per node), for storage."""
    return b"".join(nodes)


def unpack_nodes(blob: bytes) -> list[bytes]:
    """The inverse of :func:`pack_nodes`."""
    if len(blob) % HASH_SIZE:
        raise ProofError(f"a packed compact range is a multiple of {HASH_SIZE} bytes")
    return [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]


def _check_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProofError(f"{name} must be a non-negative integer, got {value!r}")


def _check_proof(proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise ProofError(f"proof[{i}] is not a {HASH_SIZE}-byte hash")


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf_hash` is leaf `index` of the tree of `tree_size` with `root`.

    Follows RFC 9162 section 2.1.3.2 (the verifier for RFC 6962 audit paths). Returns None
    when the proof holds; raises ProofError saying what failed otherwise.
    """
    _check_size("index", index)
    _check_size("tree size", tree_size)
    if index >= tree_size:
        raise ProofError(f"leaf index {index} is outside a tree of size {tree_size}")
    if not isinstance(leaf_hash, bytes) or len(leaf_hash) != HASH_SIZE:
        raise ProofError(f"leaf hash is not a {HASH_SIZE}-byte hash")
    _check_proof(proof)
    fn, sn = index, tree_size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError(f"proof is longer than a path in a tree of size {tree_size}")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"proof is shorter than a path in a tree of size {tree_size}")
    if r != root:
        raise ProofError(f"inclusion proof for leaf {index} does not lead to the given root")


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of `size1` with `root1` is a prefix of the tree of `size2`.

    Follows RFC 9162 section 2.1.4.2. Equal sizes need an empty proof and equal roots; size1 0
    is refused, as a proof from the empty tree proves nothing. Raises ProofError on failure.
    """
    _check_size("size1", size1)
    _check_size("size2", size2)
    if size1 > size2:
        raise ProofError(f"size1 {size1} is larger than size2 {size2}")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if size1 == size2:
        if proof:
            raise ProofError(f"sizes are equal ({size1}) but the proof is not empty")
        if root1 != root2:
            raise ProofError(f"sizes are equal ({size1}) but the roots differ")
        return
    if not proof:
        raise ProofError(f"empty proof between different sizes {size1} and {size2}")
    _check_proof(proof)
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"proof is too long for sizes {size1} and {size2}")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"proof is too short for sizes {size1} and {size2}")
    if fr != root1:
        raise ProofError(f"consistency proof does not reproduce root1 of the size-{size1} tree")
    if sr != root2:
        raise ProofError(f"consistency proof does not reproduce root2 of the size-{size2} tree")


def _number(x: float) -> str:
    """ECMAScript Number::toString of a finite double, as RFC 8785 section 3.2.2.3 requires.

    The shortest round-trip digits come from Python's repr (David Gay's algorithm, the same
    digits ECMAScript asks for); only the layout (exponent thresholds, "e+", no ".0") is redone.
    """
    if x == 0:
        return "0"
    if x < 0:
        return "-" + _number(-x)
    mantissa, _, exp = repr(x).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    n = len(whole) + (int(exp) if exp else 0)
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    s = stripped.rstrip("0")
    k = len(s)
    if k <= n <= 21:
        return s + "0" * (n - k)
    if 0 < n <= 21:
        return s[:n] + "." + s[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + s
    e = n - 1
    sign = "+" if e >= 0 else "-"
    return (s if k == 1 else s[0] + "." + s[1:]) + "e" + sign + str(abs(e))


def _string(s: str) -> str:
    """JSON string as ECMAScript JSON.stringify writes it; lone surrogates are refused."""
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise CanonicalJSONError(f"string holds a lone surrogate: {s!r}") from exc
    return _encode_string(s)


def _float(x: float) -> str:
    if x - x != 0:  # NaN and the infinities; finite x - x is 0.0
        raise CanonicalJSONError(f"{x!r} has no JSON form")
    r = repr(x)
    # repr is fixed-point exactly where ECMAScript is too (1e-4 <= |x| < 1e16, no "e"); only
    # its ".0" on whole numbers differs. Everything else is laid out by _number.
    if "e" in r or x == 0:
        return _number(x)
    return r[:-2] if r.endswith(".0") else r


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be")


def _sorted_keys(obj: Mapping[Any, Any]) -> list[str]:
    """Keys in UTF-16 code-unit order (checked to be strings). Code-point order is the same
    unless a key holds a character beyond U+FFFF, so that case alone sorts on UTF-16 bytes."""
    keys = list(obj)
    wide = False
    for key in keys:
        if not isinstance(key, str):
            raise CanonicalJSONError(f"object key {key!r} is not a string")
        if not key.isascii():
            _string(key)
            wide = wide or any(c > "\uffff" for c in key)
    keys.sort(key=_utf16_key if wide else None)
    return keys


def _write(obj: Any, out: list[str]) -> None:
    append = out.append
    kind = type(obj)
    if kind is str:
        append(_string(obj))
    elif kind is float:
        append(_float(obj))
    elif obj is None:
        append("null")
    elif obj is True:
        append("true")
    elif obj is False:
        append("false")
    elif kind is int or isinstance(obj, int):
        append(str(int(obj)))
    elif isinstance(obj, float):
        append(_float(float(obj)))
    elif isinstance(obj, str):
        append(_string(obj))
    elif isinstance(obj, Mapping):
        append("{")
        first = True
        for key in _sorted_keys(obj):
            if not first:
                append(",")
            first = False
            append(_encode_string(key))
            append(":")
            _write(obj[key], out)
        append("}")
    elif isinstance(obj, list | tuple):
        append("[")
        for i, item in enumerate(obj):
            if i:
                append(",")
            _write(item, out)
        append("]")
    else:
        raise CanonicalJSONError(f"{type(obj).__name__} has no JSON form")


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON of `obj` as UTF-8 bytes: one byte string per value.

    Keys are sorted by UTF-16 code units, no whitespace, strings escaped as JSON.stringify
    does. Accepts None, bool, int, float, str, lists, tuples and mappings with string keys;
    NaN, infinities, lone surrogates and other types raise CanonicalJSONError.

    Numbers: floats are written as ECMAScript does (1.0 -> "1", 1e21 -> "1e+21", -0.0 ->
    "0"), from the shortest round-trip digits of Python's repr; these are the digits
    ECMAScript prescribes, so output matches JCS for every finite double. Integers are
    written exactly, however large; JCS would round an integer beyond 2**53 to a double, so
    keep such values as strings if another JCS implementation must reproduce the hash.
    """
    out: list[str] = []
    _write(obj, out)
    return "".join(out).encode("utf-8")


def decision_leaf(record: Mapping[str, Any]) -> bytes:
    """Leaf hash of one decision record: leaf_hash(canonical_json(record))."""
    return leaf_hash(canonical_json(record))
