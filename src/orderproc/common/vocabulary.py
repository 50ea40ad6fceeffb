"""The words every service shares: asset ids, asset categories, usernames. Each rule lives here
once, so a service that names an asset or a user (orders, the web UI) checks it the way the
service that owns it (inventory, users) does, without importing that service."""

from __future__ import annotations

import re
from typing import Literal, get_args

from orderproc.errors import ValidationFailed

ASSET_ID_REGEX = r"^[A-Z0-9]{1,15}$"
"""An asset id as stored: 1 to 15 capital letters or digits (`normalize_asset_id` uppercases)."""
ASSET_ID_INPUT_REGEX = r"^[A-Za-z0-9]{1,15}$"
"""An asset id as a client may send it (any case)."""
ASSET_ID_PATTERN = re.compile(ASSET_ID_REGEX)

Category = Literal[
    "major",
    "stablecoin",
    "defi",
    "layer-1",
    "layer-2",
    "meme",
    "exchange",
    "privacy",
    "infrastructure",
    "gaming",
    "ai",
    "payments",
    "other",
]
CATEGORIES: frozenset[str] = frozenset(get_args(Category))

USERNAME_REGEX = r"^[A-Za-z0-9_]{3,30}$"
"""A username: 3 to 30 letters, digits or underscores (kept lowercase: `normalize_username`)."""
USERNAME_PATTERN = re.compile(USERNAME_REGEX)


def normalize_asset_id(raw: str) -> str:
    """`btc` → `BTC`; anything else than 1 to 15 letters and digits is a validation error (422)."""
    asset_id = raw.strip().upper()
    if not ASSET_ID_PATTERN.fullmatch(asset_id):
        message = "must be 1 to 15 letters or digits"
        raise ValidationFailed(
            f"asset_id {message}",
            errors=[{"loc": ["path", "asset_id"], "msg": message, "type": "value_error"}],
        )
    return asset_id


def normalize_username(username: str) -> str:
    return username.strip().lower()
