"""Test support that starts real servers (Redis, ...) from installed binaries."""
