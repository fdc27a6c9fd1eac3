"""Routers of the platform endpoints (auth, decisions, jobs, audit, engine, health)."""
