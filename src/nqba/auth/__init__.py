"""Identity: password hashing, access and refresh tokens, API keys, users and organisations."""
