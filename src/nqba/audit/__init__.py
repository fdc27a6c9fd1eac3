"""Tamper-evident audit log: RFC 6962 Merkle hashing, proofs and canonical decision leaves."""
