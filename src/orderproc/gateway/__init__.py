"""The gateway: the one public entry (routing, token and role checks, limits, headers)."""
