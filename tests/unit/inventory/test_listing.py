from __future__ import annotations

import itertools
from dataclasses import replace
from decimal import Decimal

import pytest

from orderproc.errors import ValidationFailed
from orderproc.inventory.domain import (
    Asset,
    AssetQuery,
    SortField,
    SortOrder,
    list_assets,
    load_snapshot,
    sort_assets,
)


def catalog() -> list[Asset]:
    """The real snapshot with a few inactive assets and a few missing values mixed in."""
    assets = load_snapshot()
    changed = {
        "DOGE": {"is_active": False},
        "USDC": {"is_active": False},
        "TAO": {"market_cap_rank": None, "total_volume_24h": None},
        "BONK": {"price_change_percentage_24h": None},
    }
    return [replace(asset, **changed.get(asset.asset_id, {})) for asset in assets]


def sort_value(asset: Asset, sort_by: SortField) -> object:
    return {
        SortField.MARKET_CAP_RANK: asset.market_cap_rank,
        SortField.PRICE: asset.price_usd,
        SortField.NAME: asset.name.casefold(),
        SortField.CHANGE_24H: asset.price_change_percentage_24h,
        SortField.VOLUME: asset.total_volume_24h,
    }[sort_by]


def expected_matches(assets: list[Asset], query: AssetQuery, *, active_only: bool) -> list[Asset]:
    """An independent, naive reading of the filters."""
    needle = (query.search or "").lower()
    return [
        asset
        for asset in assets
        if (query.category is None or asset.category == query.category)
        and (needle in asset.asset_id.lower() or needle in asset.name.lower())
        and (asset.is_active or not active_only)
    ]


DESCENDING_BY_DEFAULT = {SortField.PRICE, SortField.CHANGE_24H, SortField.VOLUME}

COMBINATIONS = list(
    itertools.product(
        [None, "bit", "ETH", "zzz"],
        [None, "meme", "stablecoin", "layer-1"],
        [True, False],
        list(SortField),
        [None, SortOrder.ASC, SortOrder.DESC],
        [(50, 0), (3, 2), (250, 0), (10, 95)],
    )
)


class TestListAssets:
    @pytest.mark.parametrize(
        ("search", "category", "active_only", "sort_by", "sort_order", "paging"), COMBINATIONS
    )
    def test_filters_sorts_and_pages_every_combination(
        self,
        search: str | None,
        category: str | None,
        active_only: bool,
        sort_by: SortField,
        sort_order: SortOrder | None,
        paging: tuple[int, int],
    ) -> None:
        assets = catalog()
        limit, offset = paging
        query = AssetQuery(search, category, active_only, sort_by, sort_order, limit, offset)

        page = list_assets(assets, query)

        matches = expected_matches(assets, query, active_only=active_only)
        assert page.total_count == len(matches)
        assert page.active_count == len(expected_matches(assets, query, active_only=True))
        assert len(page.items) == max(0, min(limit, len(matches) - offset))
        assert page.has_more == (offset + limit < len(matches))
        full = list_assets(assets, replace(query, limit=250, offset=0)).items
        assert {a.asset_id for a in full} == {a.asset_id for a in matches}
        assert page.items == full[offset : offset + limit]
        descending = (
            sort_order or (SortOrder.DESC if sort_by in DESCENDING_BY_DEFAULT else SortOrder.ASC)
        ) is SortOrder.DESC
        assert_ordered(full, sort_by, descending=descending)


def assert_ordered(items: list[Asset], sort_by: SortField, *, descending: bool) -> None:
    values = [sort_value(asset, sort_by) for asset in items]
    present = [v for v in values if v is not None]
    assert values[: len(present)] == present, "missing values come last"
    for before, after in itertools.pairwise(items):
        first, second = sort_value(before, sort_by), sort_value(after, sort_by)
        if first is None or second is None or first == second:
            if (first is None) == (second is None):
                assert before.asset_id < after.asset_id, "ties break by asset id"
            continue
        assert (first > second) if descending else (first < second)  # type: ignore[operator]


class TestListingDefaults:
    def test_lists_active_assets_by_market_cap_rank_fifty_at_a_time(self) -> None:
        page = list_assets(catalog(), AssetQuery())
        assert [asset.asset_id for asset in page.items[:3]] == ["BTC", "ETH", "USDT"]
        assert len(page.items) == 50
        assert page.has_more
        assert page.total_count == page.active_count == len(catalog()) - 2

    def test_counts_inactive_assets_only_when_asked(self) -> None:
        page = list_assets(catalog(), AssetQuery(active_only=False, limit=250))
        assert page.total_count == len(catalog())
        assert page.active_count == len(catalog()) - 2
        assert not page.has_more

    def test_searches_ids_and_names_case_insensitively(self) -> None:
        by_id = list_assets(catalog(), AssetQuery(search="sHiB")).items
        by_name = list_assets(catalog(), AssetQuery(search="shiba inu")).items
        assert (
            [asset.asset_id for asset in by_id] == [asset.asset_id for asset in by_name] == ["SHIB"]
        )

    def test_treats_a_blank_search_as_no_filter(self) -> None:
        assert list_assets(catalog(), AssetQuery(search="  ")).total_count == len(catalog()) - 2

    def test_accepts_a_category_in_any_case(self) -> None:
        page = list_assets(catalog(), AssetQuery(category="MEME"))
        assert page.items
        assert all(asset.category == "meme" for asset in page.items)

    def test_puts_the_most_expensive_first_when_sorting_by_price(self) -> None:
        page = list_assets(catalog(), AssetQuery(sort_by=SortField.PRICE, limit=1))
        assert page.items[0].asset_id == "BTC"

    def test_keeps_missing_values_last_in_both_orders(self) -> None:
        for order in SortOrder:
            ordered = sort_assets(catalog(), SortField.MARKET_CAP_RANK, order)
            assert ordered[-1].asset_id == "TAO"

    def test_breaks_ties_by_asset_id(self) -> None:
        twins = [
            replace(catalog()[0], asset_id=asset_id, price_usd=Decimal(1))
            for asset_id in ["C", "A", "B"]
        ]
        for order in SortOrder:
            ordered = sort_assets(twins, SortField.PRICE, order)
            assert [asset.asset_id for asset in ordered] == ["A", "B", "C"]

    def test_answers_an_empty_page_past_the_end(self) -> None:
        page = list_assets(catalog(), AssetQuery(offset=1000))
        assert page.items == []
        assert not page.has_more
        assert page.total_count > 0


class TestListingValidation:
    @pytest.mark.parametrize(
        "query",
        [
            AssetQuery(limit=0),
            AssetQuery(limit=251),
            AssetQuery(offset=-1),
            AssetQuery(category="shitcoins"),
        ],
    )
    def test_refuses_out_of_range_queries(self, query: AssetQuery) -> None:
        with pytest.raises(ValidationFailed) as caught:
            list_assets(catalog(), query)
        assert caught.value.errors
