"""Decisions: run a unit's decision inline or as a job, record it with its audit leaf."""
