"""Order Processor: a trading-simulation platform backend."""

__version__ = "0.1.0"
