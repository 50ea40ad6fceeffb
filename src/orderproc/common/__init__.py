"""Shared building blocks: settings, money, ids, clock, storage, locking, security."""
