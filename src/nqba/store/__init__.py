"""Persistence: the SQLAlchemy models of the platform, sessions, migrations and the cache."""
