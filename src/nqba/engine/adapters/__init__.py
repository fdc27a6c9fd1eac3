"""Adapters to optional backends; importing this package registers them without importing them."""
