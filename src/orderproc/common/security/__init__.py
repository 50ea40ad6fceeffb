"""Security building blocks: password hashing and policy, access tokens, revocation checks."""
