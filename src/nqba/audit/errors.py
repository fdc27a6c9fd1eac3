"""Errors of the audit log: bad sizes asked for, a broken stored log, a bad key or signature."""

from __future__ import annotations


class AuditError(Exception):
    """Base of the audit log's errors."""


class AuditRangeError(AuditError, ValueError):
    """A sequence number or tree size outside what the log holds (``seq >= tree_size``, ...)."""


class AuditIntegrityError(AuditError):
    """The stored log is not what append-only writes leave (a gap or a changed leaf)."""


class AuditKeyError(AuditError, ValueError):
    """The configured signing key (or a public key given to check with) is not usable."""


class CheckpointError(AuditError, ValueError):
    """A checkpoint does not verify: wrong key, changed root or size, or a bad signature."""
