"""The organisational tree: provinces, districts, communes (from `vietnam-provinces`) and agencies.

Codes are the official ones, zero-padded as the General Statistics Office writes them: province
``38`` (2 digits), district ``386`` (3), commune ``14923`` (5), so a code alone tells its level.
Agencies (hospitals, schools, enterprises with their own party unit) are registered at runtime
under any commune, district or province; their code is ``<parent code>-<slug>``.

The tree is data (it changed in July 2025); nothing else in the code base knows its shape.

Two versions of it are loaded side by side (``TREE_VERSIONS``): ``legacy``, the tree before
1 July 2025 (63 provinces, 696 districts, 10,051 communes; ``vietnam-provinces`` 0.6.0), and
``2025``, the tree of Resolution 202/2025/QH15 from 1 July 2025 (34 provinces, 3,321 communes,
wards and special zones, no districts; ``vietnamadminunits`` 1.0.4, MIT, whose codes are the
official ones). A report belongs to the tree valid at its period's end
(:meth:`OrgTree.for_period`). Codes are reused across the two (14923 was Thị trấn Cành Nàng and
is now Xã Bá Thước), so a code names a unit only together with its tree.
"""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import cache
from importlib import resources, util
from pathlib import Path
from typing import Any

from shared.domain.periods import TREE_CHANGES, VIETNAM_TZ, era_of, parse_period

LEGACY = "legacy"  # the tree before 1 July 2025
TREE_2025 = "2025"  # Resolution 202/2025/QH15, from 1 July 2025
# (id, valid from, valid to (exclusive)); the dates are shared/domain/periods.py's TREE_CHANGES
TREE_VERSIONS: tuple[tuple[str, date | None, date | None], ...] = (
    (LEGACY, None, TREE_CHANGES[0]),
    (TREE_2025, TREE_CHANGES[0], None),
)


COUNTRY = "VN"  # the whole country: above the provinces of either tree, never a unit that reports


class Level(StrEnum):
    COUNTRY = "country"
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


class UnknownTree(KeyError):
    def __init__(self, tree_id: str) -> None:
        super().__init__(tree_id)
        self.tree_id = tree_id

    def __str__(self) -> str:
        known = ", ".join(v[0] for v in TREE_VERSIONS)
        return f"unknown tree {self.tree_id!r}; the trees are {known}"


def fold(text: str) -> str:
    """Lower case without accents, for searching names: "Bá Thước" -> "ba thuoc" (đ -> d)."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


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

    def __init__(self, tree_id: str = LEGACY, valid_from: date | None = None, valid_to: date | None = None) -> None:
        self._units: dict[str, Unit] = {}
        self._counts: dict[str, dict[str, int]] = {}  # keys are Level values
        self.version = 0
        self.tree_id = tree_id
        self.valid_from = valid_from  # inclusive; None: since ever
        self.valid_to = valid_to  # exclusive; None: still valid
        # every version of the tree, oldest first, this one among them (shared by all of them)
        self.versions: list[OrgTree] = [self]
        # for search: (the version it was built at, each code's folded name, every code in order)
        self._search_index: tuple[int, dict[str, str], list[str]] | None = None
        # closed agencies: code -> the first day it is closed (see close_agency)
        self._closed: dict[str, date] = {}

    # ------------------------------------------------------------------ versions

    def link(self, *others: OrgTree) -> OrgTree:
        """Make this tree and ``others`` the versions of one tree, oldest first. Returns self."""
        versions = sorted([self, *others], key=lambda t: t.valid_from or date.min)
        for t in versions:
            t.versions = versions
        return self

    def for_period(self, period: str) -> OrgTree:
        """The version valid at the end of ``period`` (a period label). A tree loaded alone (as
        in tests that build one by hand) is valid for every period."""
        if len(self.versions) == 1:
            return self
        return self.at(parse_period(period).end)

    def at(self, day: date) -> OrgTree:
        if len(self.versions) == 1:
            return self
        era = era_of(day)
        for t in self.versions:
            if era_of(t.valid_from or date.min) == era:
                return t
        return self.versions[-1]

    def in_force(self, now: datetime | None = None) -> OrgTree:
        """The version in force today in Vietnam (ICT): what a read means when it names neither a
        period nor a tree."""
        return self.at((now or datetime.now(UTC)).astimezone(VIETNAM_TZ).date())

    def version_named(self, tree_id: str) -> OrgTree:
        for t in self.versions:
            if t.tree_id == tree_id:
                return t
        raise UnknownTree(tree_id)

    def holding(self, code: str, period: str) -> OrgTree:
        """The version to place ``code`` in for a report of ``period``: the period's own tree when
        it holds the code, else the newest version that does (so a token is checked against the
        unit the code named, before the report is refused for its period), else the period's."""
        tree = self.for_period(period)
        if code in tree:
            return tree
        return next((t for t in reversed(self.versions) if code in t), tree)

    def known_anywhere(self, code: str) -> bool:
        return any(code in t for t in self.versions)

    def why_not(self, code: str, period: str) -> str:
        """Why ``code`` cannot report for ``period``: the message for a unit missing from the tree
        valid at the period's end (closed by the 2025 reform, or not yet created)."""
        tree = self.for_period(period)
        message = f"unit {code!r} is not in {tree.validity()}, the tree of period {period}"
        others = [t for t in self.versions if t is not tree and code in t]
        if others:
            other = others[0]
            message += f"; it is {other.get(code).level} {other.get(code).name!r} of {other.validity()}"
        return message

    def validity(self) -> str:
        start = self.valid_from.isoformat() if self.valid_from else "…"
        end = self.valid_to.isoformat() if self.valid_to else "…"
        return f"tree {self.tree_id} (valid from {start} to {end}, exclusive)"

    def __contains__(self, code: object) -> bool:
        return code in self._units

    def __len__(self) -> int:
        return len(self._units)

    def get(self, code: str) -> Unit:
        try:
            return self._units[code]
        except KeyError:
            if code == COUNTRY:  # not kept in the tree: it is in no unit's path
                return Unit(COUNTRY, "Việt Nam", Level.COUNTRY, None, [p.code for p in self.provinces()])
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

    def add_agency(self, code: str, name: str, parent: str, trees: Collection[str] | None = None) -> Unit:
        """Register an agency under ``parent`` in this version and in every other version of the
        tree that holds ``parent`` (an agency under a province or a commune whose code lives on in
        the 2025 tree is there too; under a district, only in the legacy tree); with ``trees``, only
        in the versions of those ids (codes are reused: 14923 under district 386 before July 2025 is
        not the 14923 of the 2025 tree, so who may register under one may not under the other)."""
        holders = [self] if parent in self else []
        holders += [t for t in self.versions if t is not self and parent in t]
        if trees is not None:
            holders = [t for t in holders if t.tree_id in trees]
        if not holders:
            raise UnknownUnit(parent)
        unit = None
        for t in holders:
            added = t._add_agency(code, name, parent)
            unit = added if unit is None else unit
        assert unit is not None
        return unit

    def _add_agency(self, code: str, name: str, parent: str) -> Unit:
        parent_unit = self.get(parent)
        if parent_unit.level == Level.AGENCY:
            raise HierarchyError("an agency is registered under a commune, a district or a province")
        if not code.startswith(f"{parent}-"):
            raise HierarchyError(f"an agency under {parent} has a code starting with '{parent}-'")
        return self.add(code, name, Level.AGENCY, parent)

    def rename_agency(self, code: str, name: str) -> Unit:
        """Give the agency ``code`` a new name in every version of the tree holding it."""
        return self._change_agency(code, lambda t, unit: setattr(unit, "name", name))

    def close_agency(self, code: str, closed_from: date | None) -> Unit:
        """Close the agency ``code`` from the day ``closed_from`` (None: reopen it), in every
        version of the tree holding it. A closed agency stays in the tree, with its history and
        totals; it is no longer expected in a period it is closed on the last day of
        (:meth:`count` with ``on``), as a period belongs to the tree valid at its end."""

        def close(t: OrgTree, unit: Unit) -> None:
            if closed_from is None:
                t._closed.pop(code, None)
            else:
                t._closed[code] = closed_from

        return self._change_agency(code, close)

    def closed_from(self, code: str) -> date | None:
        """The first day the agency ``code`` is closed; None when it is open (or not an agency)."""
        return self._closed.get(code)

    def open_on(self, code: str, day: date) -> bool:
        closed = self._closed.get(code)
        return closed is None or day < closed

    def _change_agency(self, code: str, change: Callable[[OrgTree, Unit], None]) -> Unit:
        holders = [t for t in self.versions if code in t]
        if not holders:
            raise UnknownUnit(code)
        if holders[0].get(code).level != Level.AGENCY:
            raise HierarchyError(f"unit {code} is not an agency")
        for t in holders:
            change(t, t.get(code))
            t.version += 1  # answers cached under the old version are not reused
        return self.get(code) if code in self else holders[0].get(code)

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

    def has(self, code: str) -> bool:
        """Whether ``code`` is a unit of this tree or the whole country (``VN``), which is not."""
        return code == COUNTRY or code in self._units

    def subtree(self, code: str) -> Iterator[Unit]:
        stack = [code]
        while stack:
            unit = self.get(stack.pop())
            yield unit
            stack.extend(reversed(unit.children))

    def count(self, code: str, levels: Iterable[Level | str], on: date | None = None) -> int:
        """How many units of ``levels`` the subtree of ``code`` holds; with ``on`` (a period's
        last day), without the agencies closed on that day."""
        wanted = list(levels)
        if code == COUNTRY:
            return sum(self.count(p.code, wanted, on) for p in self.provinces())
        try:
            counts = self._counts[code]
        except KeyError:
            raise UnknownUnit(code) from None
        # Level is a StrEnum: "commune" and Level.COMMUNE are the same key
        total = sum(counts.get(level, 0) for level in wanted)
        if on is not None and Level.AGENCY in wanted:
            # few agencies are ever closed: a walk over them keeps the open count O(1) otherwise
            total -= sum(1 for c, day in self._closed.items() if day <= on and code in self.path(c))
        return total

    def provinces(self) -> list[Unit]:
        return [u for u in self._units.values() if u.parent is None]

    def search(
        self, query: str = "", parent: str | None = None, limit: int = 50, within: str | None = None
    ) -> list[Unit]:
        """Units whose name or code contains ``query``, accents and case ignored ("ba thuoc"
        finds "Xã Bá Thước"), among the children of ``parent`` when given, else in the subtree of
        ``within`` when given (``VN``: the whole tree), else the whole tree; the first ``limit``
        by code. Names are folded once per version of the tree, not on every search."""
        wanted = fold(query.strip())
        names, codes = self._folded_names()
        if parent is not None:
            pool: Iterable[str] = sorted(self.get(parent).children)
        elif within is not None and within != COUNTRY:
            # a unit of another version of the tree (an old district) has nothing under it here
            pool = sorted(u.code for u in self.subtree(within)) if within in self._units else []
        else:
            pool = codes
        found: list[Unit] = []
        for code in pool:
            if not wanted or wanted in names[code] or wanted in code:
                found.append(self._units[code])
                if len(found) >= limit:
                    break
        return found

    def _folded_names(self) -> tuple[dict[str, str], list[str]]:
        """Every unit's folded name by code and every code in order, rebuilt when a unit is added."""
        if self._search_index is None or self._search_index[0] != self.version:
            names = {code: fold(u.name) for code, u in self._units.items()}
            self._search_index = (self.version, names, sorted(names))
        return self._search_index[1], self._search_index[2]


def _division_name(raw: dict[str, Any]) -> str:
    return str(raw["name"])


@cache
def _nested_divisions() -> list[dict[str, Any]]:
    text = resources.files("vietnam_provinces").joinpath("data/nested-divisions.json").read_text(encoding="utf-8")
    divisions: list[dict[str, Any]] = json.loads(text)
    return divisions


def load_vietnam(provinces: Iterable[str] | None = None) -> OrgTree:
    """The administrative tree before July 2025 (63 provinces, 696 districts, 10,051 communes),
    linked with its successor from 1 July 2025 (:func:`load_vietnam_2025`): ``for_period`` and
    ``version_named`` give either.

    ``provinces`` limits both to some province codes (tests and benchmarks that want less)."""
    wanted = list(provinces) if provinces is not None else None
    return load_vietnam_legacy(wanted).link(load_vietnam_2025(wanted))


def load_vietnam_legacy(provinces: Iterable[str] | None = None) -> OrgTree:
    """The administrative tree before July 2025 alone."""
    wanted = set(provinces) if provinces is not None else None
    tree = OrgTree(LEGACY, TREE_VERSIONS[0][1], TREE_VERSIONS[0][2])
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


def _adminunits_data() -> Path:
    """The data folder of the ``vietnamadminunits`` package, found without importing it (its
    modules import geopy and shapely, which we do not need to read two data files)."""
    spec = util.find_spec("vietnamadminunits")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the vietnamadminunits package is not installed (make install)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@cache
def _units_2025() -> tuple[tuple[str, str, str, str], ...]:
    """(province code, province name, commune code, commune name) of the 2025 tree."""
    with sqlite3.connect(f"file:{_adminunits_data() / 'dataset.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT provinceCode, province, wardCode, ward FROM admin_units").fetchall()
    return tuple((str(p), str(pn), str(w), str(wn)) for p, pn, w, wn in rows)


def load_vietnam_2025(provinces: Iterable[str] | None = None) -> OrgTree:
    """The administrative tree from 1 July 2025 (Resolution 202/2025/QH15): 34 provinces and
    3,321 communes, wards and special zones under them, no districts. Codes are the official
    ones (the same as vietnam-provinces 2026.9.0's), zero-padded like the old tree's."""
    wanted = set(provinces) if provinces is not None else None
    tree = OrgTree(TREE_2025, TREE_VERSIONS[1][1], TREE_VERSIONS[1][2])
    for pcode, pname, wcode, wname in sorted(_units_2025(), key=lambda r: (r[0], r[2])):
        if wanted is not None and pcode not in wanted:
            continue
        if pcode not in tree:
            tree.add(pcode, unicodedata.normalize("NFC", pname), Level.PROVINCE, None)
        tree.add(wcode, unicodedata.normalize("NFC", wname), Level.COMMUNE, pcode)
    return tree


@dataclass(frozen=True)
class Succession:
    """What became of one commune of the tree before July 2025: the communes of the 2025 tree
    that took it over, its primary successor first. A whole merge has one successor; a commune
    split among several has its history shown on the primary one only (approximately)."""

    old: str
    successors: tuple[str, ...]

    @property
    def primary(self) -> str:
        return self.successors[0]

    @property
    def split(self) -> bool:
        return len(self.successors) > 1


@dataclass(frozen=True, eq=False)  # hashed by identity: it is loaded once
class Conversion2025:
    """The conversion table of 1 July 2025, old tree -> 2025 tree, by code."""

    communes: dict[str, Succession]  # old commune code -> its successors
    provinces: dict[str, str]  # old province code -> the new province it merged into (whole)

    @property
    def by_primary(self) -> dict[str, list[str]]:
        """New commune code -> the old communes whose history it shows."""
        return _by_primary(self)

    @property
    def by_successor(self) -> dict[str, list[str]]:
        """New commune code -> the old communes it took a part or the whole of."""
        return _by_successor(self)


@cache
def _by_primary(conversion: Conversion2025) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for old, s in sorted(conversion.communes.items()):
        out.setdefault(s.primary, []).append(old)
    return out


@cache
def _by_successor(conversion: Conversion2025) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for old, s in sorted(conversion.communes.items()):
        for new in s.successors:
            out.setdefault(new, []).append(old)
    return out


@cache
def conversion_2025() -> Conversion2025:
    """The official conversion table as ``vietnamadminunits`` 1.0.4 ships it (keyed by names;
    joined here to the codes of its two unit tables): 9,564 communes merged whole into one new
    commune, 471 split among 2 to 5, each with one default (primary) successor; 63 provinces
    merged whole into 34. Five island districts without communes have no code and are left out."""
    data = _adminunits_data()
    with sqlite3.connect(f"file:{data / 'dataset.db'}?mode=ro", uri=True) as db:
        old_codes = {
            f"{p}_{d}_{w or ''}": (str(code), str(pcode))
            for code, pcode, p, d, w in db.execute(
                "SELECT wardCode, provinceCode, provinceKey, districtKey, wardKey FROM admin_units_legacy"
            )
        }
        new_codes = {
            (str(p), str(w)): (str(code), str(pcode))
            for code, pcode, p, w in db.execute("SELECT wardCode, provinceCode, provinceKey, wardKey FROM admin_units")
        }
    table = json.loads((data / "converter_2025.json").read_text(encoding="utf-8"))
    communes: dict[str, Succession] = {}
    provinces: dict[str, str] = {}
    for pkey, wards in table["DICT_PROVINCE_WARD_NO_DIVIDED"].items():
        for wkey, olds in wards.items():
            new, new_province = new_codes[(pkey, wkey)]
            for okey in olds:
                old, old_province = old_codes[okey]
                if old == "None":
                    continue
                communes[old] = Succession(old, (new,))
                provinces[old_province] = new_province
    for pkey, olds in table["DICT_PROVINCE_WARD_DIVIDED"].items():
        for okey, news in olds.items():
            old, old_province = old_codes[okey]
            ordered = sorted(news, key=lambda n: not n["isDefaultNewWard"])  # the default one first
            successors = tuple(new_codes[(pkey, n["newWardKey"])][0] for n in ordered)
            communes[old] = Succession(old, successors)
            provinces[old_province] = new_codes[(pkey, ordered[0]["newWardKey"])][1]
    return Conversion2025(communes, provinces)
