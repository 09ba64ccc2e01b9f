"""The organisational tree: provinces, districts, communes (from `vietnam-provinces`) and agencies.

Codes are the official ones, zero-padded as the General Statistics Office writes them: province
``38`` (2 digits), district ``386`` (3), commune ``14923`` (5), so a code alone tells its level.
Agencies (hospitals, schools, enterprises with their own party unit) are registered at runtime
under any commune, district or province; their code is ``<parent code>-<slug>``.

The tree is data (it changed in July 2025); nothing else in the code base knows its shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import resources


class Level(StrEnum):
    PROVINCE = "province"
    DISTRICT = "district"
    COMMUNE = "commune"
    AGENCY = "agency"


class UnknownUnit(KeyError):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code

    def __str__(self) -> str:
        return f"unknown unit code {self.code!r}"


class HierarchyError(ValueError):
    """An agency registration that the tree cannot take."""


@dataclass
class Unit:
    code: str
    name: str
    level: Level
    parent: str | None
    children: list[str] = field(default_factory=list)


class OrgTree:
    """An in-memory tree of units with, for each unit, how many units of each level its subtree
    holds (kept up to date as agencies are added), so completeness denominators are O(1)."""

    def __init__(self) -> None:
        self._units: dict[str, Unit] = {}
        self._counts: dict[str, dict[str, int]] = {}  # keys are Level values
        self.version = 0

    def __contains__(self, code: object) -> bool:
        return code in self._units

    def __len__(self) -> int:
        return len(self._units)

    def get(self, code: str) -> Unit:
        try:
            return self._units[code]
        except KeyError:
            raise UnknownUnit(code) from None

    def add(self, code: str, name: str, level: Level, parent: str | None) -> Unit:
        if code in self._units:
            existing = self._units[code]
            if (existing.name, existing.level, existing.parent) == (name, level, parent):
                return existing
            raise HierarchyError(f"unit {code} already exists as {existing.level} {existing.name!r}")
        if parent is not None and parent not in self._units:
            raise UnknownUnit(parent)
        unit = Unit(code, name, level, parent)
        self._units[code] = unit
        self._counts[code] = {}
        if parent is not None:
            self._units[parent].children.append(code)
        for ancestor in self.path(code):
            counts = self._counts[ancestor]
            counts[level] = counts.get(level, 0) + 1
        self.version += 1
        return unit

    def add_agency(self, code: str, name: str, parent: str) -> Unit:
        parent_unit = self.get(parent)
        if parent_unit.level == Level.AGENCY:
            raise HierarchyError("an agency is registered under a commune, a district or a province")
        if not code.startswith(f"{parent}-"):
            raise HierarchyError(f"an agency under {parent} has a code starting with '{parent}-'")
        return self.add(code, name, Level.AGENCY, parent)

    def path(self, code: str) -> list[str]:
        """The unit and its ancestors, the unit first, the province last."""
        chain = []
        current: str | None = code
        while current is not None:
            chain.append(current)
            current = self.get(current).parent
        return chain

    def children(self, code: str) -> list[Unit]:
        return [self._units[c] for c in self.get(code).children]

    def subtree(self, code: str) -> Iterator[Unit]:
        stack = [code]
        while stack:
            unit = self.get(stack.pop())
            yield unit
            stack.extend(reversed(unit.children))

    def count(self, code: str, levels: Iterable[Level | str]) -> int:
        try:
            counts = self._counts[code]
        except KeyError:
            raise UnknownUnit(code) from None
        # Level is a StrEnum: "commune" and Level.COMMUNE are the same key
        return sum(counts.get(level, 0) for level in levels)

    def provinces(self) -> list[Unit]:
        return [u for u in self._units.values() if u.parent is None]


def _division_name(raw: dict) -> str:
    return str(raw["name"])


@cache
def _nested_divisions() -> list[dict]:
    text = resources.files("vietnam_provinces").joinpath("data/nested-divisions.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def load_vietnam(provinces: Iterable[str] | None = None) -> OrgTree:
    """The administrative tree before July 2025 (63 provinces, 696 districts, 10,051 communes).

    ``provinces`` limits it to some province codes (tests and benchmarks that want less)."""
    wanted = set(provinces) if provinces is not None else None
    tree = OrgTree()
    for p in _nested_divisions():
        pcode = f"{p['code']:02d}"
        if wanted is not None and pcode not in wanted:
            continue
        tree.add(pcode, _division_name(p), Level.PROVINCE, None)
        for d in p["districts"]:
            dcode = f"{d['code']:03d}"
            tree.add(dcode, _division_name(d), Level.DISTRICT, pcode)
            for w in d["wards"]:
                tree.add(f"{w['code']:05d}", _division_name(w), Level.COMMUNE, dcode)
    return tree
