"""The read API's reads of units and totals, with their rules: which reads are rationed per token,
which answers are reused from the cache, and what the re-mapped view of a 2025 unit may show.

The routes (services/api/routes/) check the token's scope and subtree first; the errors here name
what was refused, and the routes turn them into HTTP answers.
"""

from __future__ import annotations

from services.api.cache import TotalsCache, answer_json
from services.api.repository import TotalsReader
from services.api.settings import ApiSettings
from services.api.views import (
    MissingOut,
    RemappedTotalsOut,
    UnitsOut,
    children_totals_data,
    missing_units,
    remapped_sources,
    remapped_totals,
    search_units,
    unit_totals_data,
)
from shared.domain.auth import Principal
from shared.domain.catalog import Catalog
from shared.domain.hierarchy import LEGACY, TREE_2025, OrgTree, UnknownTree, conversion_2025
from shared.domain.periods import parse_period
from shared.http.ratelimit import RateLimiter


class TooManyReads(Exception):
    """The token has used its share of expensive reads; ``wait`` seconds until the next one."""

    def __init__(self, wait: float, per_second: float) -> None:
        super().__init__(
            f"too many searches, completeness lists or re-mapped totals for this token (at most "
            f"{per_second:g} a second, BAOCAO_API_EXPENSIVE_READS_PER_SECOND)"
        )
        self.wait = wait


class NoTree2025(Exception):
    """The API was started without the 2025 tree, so it has no re-mapped view."""

    def __init__(self) -> None:
        super().__init__("this API was started without the 2025 tree")


class NotALegacyPeriod(Exception):
    """The re-mapped view shows periods of the legacy tree only; the message says where to look."""


class SourcesOutsideToken(Exception):
    """Some old units the re-mapped view adds up are outside the token's unit in their tree."""


class UnknownSeries(Exception):
    def __init__(self, known: list[str]) -> None:
        super().__init__(f"unknown series; one of {known}")


class Reads:
    """Reads of one API process. Reads whose cost grows with the tree or the subtree (searches,
    completeness lists, re-mapped totals) are rationed per token, so that one token cannot take the
    event loop from everyone else's reads; totals and drill-downs come from the cache and are not."""

    def __init__(
        self, reader: TotalsReader, catalog: Catalog, cache: TotalsCache | None, settings: ApiSettings
    ) -> None:
        self.reader = reader
        self.catalog = catalog
        self.cache = cache
        self._per_second = settings.expensive_reads_per_second
        self._expensive = RateLimiter(settings.expensive_reads_per_second, settings.expensive_reads_burst)

    def ration(self, principal: Principal) -> None:
        """Count one expensive read against the token; :class:`TooManyReads` past its share."""
        wait = self._expensive.acquire(principal.token_id)
        if wait:
            raise TooManyReads(wait, self._per_second)

    def search(self, tree: OrgTree, principal: Principal, query: str, parent: str | None, limit: int) -> UnitsOut:
        """Units found by name or code within the token's subtree."""
        return search_units(tree, query, parent, limit, lambda code: principal.covers(tree, code), principal.unit)

    async def totals(self, tree: OrgTree, code: str, period: str) -> bytes:
        """A unit's totals as JSON (UnitTotalsOut); PeriodError for a period that is not one."""
        parse_period(period)
        return await answer_json(
            self.cache,
            "totals",
            code,
            period,
            tree,
            lambda: unit_totals_data(self.reader, self.catalog, tree, code, period),
        )

    async def children(self, tree: OrgTree, code: str, period: str) -> bytes:
        """One row of totals per child as JSON (ChildrenTotalsOut); PeriodError as for totals."""
        parse_period(period)
        return await answer_json(
            self.cache,
            "children",
            code,
            period,
            tree,
            lambda: children_totals_data(self.reader, self.catalog, tree, code, period),
        )

    def tree_2025(self, trees: OrgTree) -> OrgTree:
        try:
            return trees.version_named(TREE_2025)
        except UnknownTree:
            raise NoTree2025() from None

    async def remapped(self, trees: OrgTree, principal: Principal, code: str, period: str) -> RemappedTotalsOut:
        """A unit of the 2025 tree (already checked against the token) with the history of the old
        units it took over, for ``period`` (a valid period) before July 2025. The figures shown
        are the old units' (legacy-tree reports): each is read in its own tree, like any read of
        its period, so a token sees here only what it could read directly."""
        period_tree = trees.for_period(period).tree_id
        if period_tree != LEGACY:
            raise NotALegacyPeriod(
                f"period {period} is in tree {period_tree}: its totals are at /v1/units/{code}/totals; "
                "the re-mapped view shows periods before 2025-07-01"
            )
        found = remapped_sources(trees, conversion_2025(), code)
        sources = found[0]
        old = trees.version_named(LEGACY)
        hidden = [unit for unit, _ in sources if not principal.covers(old, unit.code)]
        if hidden:
            names = ", ".join(f"{u.code} {u.name}" for u in hidden[:3]) + (" …" if len(hidden) > 3 else "")
            raise SourcesOutsideToken(
                f"the re-mapped view of {code} adds up {len(sources)} units of the tree before 2025-07-01; "
                f"{len(hidden)} of them are outside this token's unit {principal.unit} in that tree ({names})"
            )
        return await remapped_totals(self.reader, self.catalog, trees, found, code, period)

    async def missing(self, tree: OrgTree, code: str, series: str, period: str) -> MissingOut:
        """Who under ``code`` has not reported ``series`` in ``period``: UnknownSeries for a series
        the catalog does not have, then PeriodError for a period that is not one."""
        if series not in self.catalog.series:
            raise UnknownSeries(sorted(self.catalog.series))
        parse_period(period)
        return await missing_units(self.reader, self.catalog, tree, code, series, period)
