"""The orders service: market orders, positions, portfolio, asset ledger, reconcile."""
