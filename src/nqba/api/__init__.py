"""The HTTP API: a thin FastAPI layer over the platform services and business units."""
