"""Inventory: the asset catalog, its prices and the price feed, and candles."""
