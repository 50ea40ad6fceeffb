"""Settings: documented, validated, and strict about secrets where it matters."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from orderproc.common.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented_in_the_env_example() -> None:
    text = (ROOT / ".env.example").read_text()
    assert [f for f in Settings.model_fields if f"ORDERPROC_{f.upper()}" not in text] == []


def test_refuses_a_stale_bound_not_above_the_tick() -> None:
    with pytest.raises(ValidationError, match="price_stale_seconds"):
        Settings(price_tick_seconds=5, price_stale_seconds=5)


@pytest.mark.parametrize("secret", [None, "secret", "short-but-not-32"])
def test_a_weak_or_missing_secret_is_refused(secret: str | None) -> None:
    with pytest.raises(ValueError, match="ORDERPROC_JWT_SECRET"):
        Settings(mode="distributed", jwt_secret=secret).require_strong_secret()


def test_reads_the_environment_with_its_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERPROC_PORT", "9001")
    monkeypatch.setenv("ORDERPROC_TRUSTED_PROXIES", '["10.0.0.0/8"]')
    settings = Settings()
    assert settings.port == 9001
    assert settings.trusted_proxies == ["10.0.0.0/8"]


def test_the_fees_default_to_binance_spots_base_tier() -> None:
    settings = Settings()
    assert (settings.taker_fee_bps, settings.maker_fee_bps) == (10, 10)


def test_the_deprecated_single_fee_sets_both_fees_not_set_themselves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = Settings(order_fee_bps=25)
    assert (old.taker_fee_bps, old.maker_fee_bps) == (25, 25)
    mixed = Settings(order_fee_bps=25, taker_fee_bps=7)
    assert (mixed.taker_fee_bps, mixed.maker_fee_bps) == (7, 25)
    monkeypatch.setenv("ORDERPROC_ORDER_FEE_BPS", "30")
    monkeypatch.setenv("ORDERPROC_MAKER_FEE_BPS", "0")
    from_env = Settings()
    assert (from_env.taker_fee_bps, from_env.maker_fee_bps) == (30, 0)


def test_a_fee_beyond_ten_percent_is_refused() -> None:
    with pytest.raises(ValidationError, match="taker_fee_bps"):
        Settings(taker_fee_bps=1001)
