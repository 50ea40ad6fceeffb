"""Settings, read once from `ORDERPROC_*` environment variables (see `.env.example`)."""

from __future__ import annotations

import os
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

WEAK_SECRETS = frozenset({"", "secret", "changeme", "change-me", "password", "jwt-secret"})
MIN_SECRET_LENGTH = 32


class Settings(BaseSettings):
    """Every knob of the platform. Build it with `get_settings()` or directly in tests."""

    model_config = SettingsConfigDict(env_prefix="ORDERPROC_", extra="ignore", frozen=True)

    mode: Literal["embedded", "distributed"] = "embedded"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Path("data")
    database_url: str | None = None
    redis_url: str | None = None
    # Shared state in Redis (rate limits, failed-login counts, revocations; docs/operations.md,
    # "Redis down"): each call is bounded by the timeout; after `redis_breaker_failures` failures
    # in a row, Redis is skipped for the cool-down and this process answers on its own.
    redis_timeout_seconds: float = Field(
        0.1, gt=0, le=5, description="Longest wait for one Redis call of the shared state"
    )
    redis_breaker_failures: int = Field(3, ge=1, le=100)
    redis_breaker_cool_down_seconds: float = Field(5.0, ge=0, le=300)
    database_pool_size: int = Field(
        10, ge=1, le=200, description="PostgreSQL connections per process"
    )
    database_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="Longest PostgreSQL statement or SQLite write-lock wait; then 503",
    )

    jwt_secret: SecretStr | None = None
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_issuer: str = "orderproc"
    jwt_audience: str = "orderproc-api"
    access_token_ttl_seconds: int = Field(3600, ge=60, le=86400)
    revocation_cache_seconds: float = Field(
        5.0, ge=0, description="How long another process's revocation may go unseen."
    )

    password_hash_profile: Literal["owasp", "fast-insecure-for-tests"] = "owasp"
    password_hash_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    password_hash_queue: int = Field(32, ge=1)

    deposit_daily_limit: Decimal = Field(Decimal("10000"), gt=0)
    withdraw_daily_limit: Decimal = Field(Decimal("5000"), gt=0)
    max_cash_amount: Decimal = Field(Decimal("1000000"), gt=0)

    rate_limit_enabled: bool = True
    rate_limit_per_minute: int = Field(1200, ge=1)
    # Failed-password throttling (docs/security.md, "Login abuse"): per (username, client)
    # pair, per username (then only known devices are evaluated), per address (403).
    login_block_enabled: bool = True
    login_pair_failure_limit: int = Field(5, ge=1, description="per (username, client) pair")
    login_failure_limit: int = Field(
        10, ge=2, description="username-client pairs failing from one address: address blocked"
    )
    login_failure_window_seconds: int = Field(900, ge=1)
    login_block_seconds: int = Field(900, ge=1)
    login_user_failure_limit: int = Field(100, ge=1, description="per username, then devices only")
    login_user_failure_window_seconds: int = Field(3600, ge=1)
    login_device_cookie_days: int = Field(90, ge=1, le=400)
    trusted_proxies: list[str] = Field(default_factory=list)
    # The gateway of distributed mode (gateway/proxy.py): browser origins that may call the API
    # from other sites (CORS; none by default, "*" for any), and where each service listens.
    cors_allow_origins: list[str] = Field(default_factory=list)
    gateway_upstreams: dict[str, str] = Field(
        default_factory=dict,
        description='service name to base URL, e.g. {"users": "http://10.0.0.5:8081", ...}',
    )

    max_body_bytes: int = Field(64 * 1024, ge=1024)
    # Connection limits (docs/security.md, "Connection limits"; common/connection_limits.py).
    max_request_line_bytes: int = Field(8192, ge=256, description="request target: else 414")
    max_header_bytes: int = Field(16384, ge=1024, description="header section: else 431")
    max_header_fields: int = Field(100, ge=8, description="header fields: else 431")
    header_timeout_seconds: float = Field(10.0, gt=0, description="whole head: else 408")
    body_idle_timeout_seconds: float = Field(30.0, gt=0, description="body stall: else 408")
    keep_alive_timeout_seconds: int = Field(5, ge=1, description="idle between requests")
    max_connections_per_address: int = Field(100, ge=0, description="0: no cap; else 429")
    lock_timeout_seconds: float = Field(5.0, gt=0)
    idempotency_ttl_seconds: int = Field(86400, ge=60)
    # The background purge of expired idempotency records and revocations (common/purge.py).
    purge_interval_seconds: float = Field(60.0, ge=0, description="0: no background purge")
    purge_batch_size: int = Field(500, ge=1, le=10_000, description="rows per DELETE")

    # Fees in basis points of an order's value (docs/money.md, "Fees"). Defaults: Binance
    # spot's base tier, 0.10 % maker and 0.10 % taker. Taker: an order filled when placed
    # (every market order); maker: one that rests and fills on a later tick (resting orders).
    taker_fee_bps: int = Field(10, ge=0, le=1000, description="Fee of an order filled on placement")
    maker_fee_bps: int = Field(10, ge=0, le=1000, description="Fee of a resting order's fill")
    order_fee_bps: int | None = Field(
        None,
        ge=0,
        le=1000,
        deprecated="ORDERPROC_ORDER_FEE_BPS is deprecated: set ORDERPROC_TAKER_FEE_BPS and "
        "ORDERPROC_MAKER_FEE_BPS",
        description="Deprecated: the fee of both kinds of fill, where those are not set",
    )
    order_slippage_bps: int = Field(0, ge=0, le=1000)
    min_order_notional: Decimal = Field(Decimal("1.00"), gt=0)
    max_order_notional: Decimal = Field(Decimal("10000"), gt=0)

    price_feed: Literal["simulated", "coingecko", "off"] = "simulated"
    price_tick_seconds: float = Field(2.0, gt=0, le=3600)
    price_seed: int = 20240218
    price_stale_seconds: float = Field(30.0, gt=0)
    # With Redis, one inventory process leads the price feed; a follower takes over within
    # this long (plus a third of it) when the leader dies (common/price_fanout.py).
    feed_lease_seconds: float = Field(6.0, ge=0.3, le=300)
    # The sandbox's admin routes (/api/v1/admin/sandbox/...: pause, set a price, step a tick);
    # off, they do not exist.
    sandbox: bool = False
    coingecko_api_key: SecretStr | None = None
    coingecko_plan: Literal["demo", "pro"] = "demo"
    # At least an hour: an open hour's or day's stored row needs its asset's last few 1m rows
    # (it takes in closed minutes every few minutes: inventory/live_candles.ROLLUP_EVERY).
    candle_retention_1m_hours: float = Field(48, ge=1)
    candle_retention_1h_days: float = Field(90, gt=0)
    candle_retention_1d_days: float = Field(3650, gt=0)
    # A fresh install's history (48 h of 1 m, 90 days of 1 h, 2 years of 1 d, cut to the
    # retention above): generated from the seed, or fetched from CoinGecko (inventory/history.py).
    candle_backfill: bool = True
    # The JSON price stream (GET /api/v1/stream/prices) and stream tickets (docs/api.md,
    # "Price stream"); connections are counted by each process.
    stream_connections_per_user: int = Field(5, ge=1, description="open streams per user")
    stream_connections_per_address: int = Field(
        20, ge=1, description="open streams per client address"
    )
    stream_resume_ticks: int = Field(
        60, ge=1, le=10_000, description="ticks kept for Last-Event-ID resumption"
    )
    stream_heartbeat_seconds: float = Field(15.0, gt=0, le=300)
    stream_ticket_seconds: int = Field(30, ge=1, le=600, description="a ticket's life, seconds")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    access_log: bool = True

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="before")
    @classmethod
    def _fee_alias(cls, data: Any) -> Any:
        """The one fee of old (`order_fee_bps`) is the taker's and the maker's where those are
        not set themselves."""
        if isinstance(data, dict) and data.get("order_fee_bps") is not None:
            old = data["order_fee_bps"]
            data = {"taker_fee_bps": old, "maker_fee_bps": old, **data}
        return data

    @model_validator(mode="after")
    def _stale_bound_exceeds_tick(self) -> Settings:
        if self.price_feed != "off" and self.price_stale_seconds <= self.price_tick_seconds:
            raise ValueError("price_stale_seconds must be larger than price_tick_seconds")
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'orderproc.db').resolve()}"

    def require_strong_secret(self) -> str:
        """The JWT secret, refusing a missing or weak one (embedded mode makes its own)."""
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
        if secret.lower() in WEAK_SECRETS or len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"ORDERPROC_JWT_SECRET must be set to a random string of at least "
                f"{MIN_SECRET_LENGTH} characters"
            )
        return secret


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
