"""Registering agencies (hospitals, schools, enterprise party units) under existing units: what a
name may hold, how many agencies one unit may have, and in which versions of the tree one goes."""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import Annotated, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.domain.audit import Action
from shared.domain.auth import Principal
from shared.domain.hierarchy import HierarchyError, Level, OrgTree, UnknownUnit
from shared.domain.reports import NfcText

# Refused in agency names: characters that are invisible, change how the text around them is
# displayed, or have no agreed meaning, so that two names that look alike are alike and a name
# cannot hide what it says: control characters (Cc: NUL, newlines, ...), the bidirectional
# embeddings, overrides, isolates and marks (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F,
# U+061C), every other format character (Cf: zero-width space, BOM, soft hyphen, tag characters;
# the zero-width joiners too, which Vietnamese names have no use for), line and paragraph
# separators (Zl, Zp), surrogates (Cs), private-use (Co) and unassigned (Cn) code points, and
# the markup characters < and >. A name must hold at least one letter or digit.
_BIDI_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}
_REFUSED_CATEGORIES = {
    "Cc": "control characters",
    "Cf": "invisible format characters",
    "Zl": "line separators",
    "Zp": "paragraph separators",
    "Cs": "surrogate code points",
    "Co": "private-use characters",
    "Cn": "unassigned code points",
}


def plain_name(name: str) -> str:
    """``name`` unchanged, or ValueError naming the first refused character and its position."""
    for position, char in enumerate(name):
        if char in _BIDI_CONTROLS:
            raise ValueError(
                f"must not contain bidirectional control characters (U+{ord(char):04X} at position {position})"
            )
        if (what := _REFUSED_CATEGORIES.get(unicodedata.category(char))) is not None:
            raise ValueError(f"must not contain {what} (U+{ord(char):04X} at position {position})")
        if char in "<>":
            raise ValueError(f"must not contain '<' or '>' (at position {position})")
    if not any(unicodedata.category(char)[0] in "LN" for char in name):
        raise ValueError("must contain at least one letter or digit")
    return name


class AgencyIn(BaseModel):
    """An agency, hospital, school or enterprise party unit, registered under an existing unit."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    code: str = Field(
        pattern=r"^[0-9]{2,5}-[a-z0-9][a-z0-9_]{0,39}$", examples=["38-bvdk"], description="<parent>-<slug>"
    )
    name: Annotated[NfcText, AfterValidator(plain_name)] = Field(
        min_length=1,
        max_length=200,
        examples=["Đảng bộ Bệnh viện Đa khoa tỉnh"],
        description="plain text with a letter or digit: no control, format (zero-width, bidirectional, BOM, tag), "
        "separator, private-use or unassigned characters, no '<' or '>'",
    )
    parent: str = Field(pattern=r"^[0-9]{2,5}$", examples=["38"], description="a commune, district or province")


class AgencyChange(BaseModel):
    """A change to a registered agency: a new name, a closing date, or both. ``closed_from`` is
    the first day the agency is closed: it is no longer expected in the periods that end on or
    after that day; its reports and totals stay. ``closed_from: null`` reopens it (a closing
    entered by mistake, or an agency that resumes: the history is kept either way, so reopening
    loses nothing and needs no new code)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: Annotated[NfcText, AfterValidator(plain_name)] | None = Field(
        default=None, min_length=1, max_length=200, examples=["Đảng bộ Bệnh viện Đa khoa tỉnh"]
    )
    closed_from: date | None = Field(default=None, examples=["2025-10-01"], description="ISO date; null reopens")


class Registry(Protocol):
    """Where agencies are kept (shared/adapters/registry.py, AgencyRegistry)."""

    async def register(self, code: str, name: str, parent: str, trees: list[str] | None = None) -> bool: ...

    async def rename(self, code: str, name: str) -> None: ...

    async def close(self, code: str, closed_from: date | None) -> None: ...


class NotAnAgency(Exception):
    """The code names no registered agency of the tree."""

    def __init__(self, code: str) -> None:
        super().__init__(f"no agency {code!r}: only registered agencies are renamed or closed")


class TooManyAgencies(Exception):
    """The parent already has the most agencies one unit may have."""


class RegistryUnavailable(Exception):
    def __init__(self) -> None:
        super().__init__("the agency registry is not available")


class AgencyConflict(Exception):
    """The agency conflicts with a registered unit (another name, parent or tree for its code)."""


class AgencyRegistrar:
    """Registers agencies, at most ``max_per_unit`` under one unit. ``registry`` is None in an app
    built by a test without one: every registration then fails with :class:`RegistryUnavailable`."""

    def __init__(self, registry: Registry | None, max_per_unit: int) -> None:
        self.registry = registry
        self.max_per_unit = max_per_unit

    async def register(self, agency: AgencyIn, tree: OrgTree, principal: Principal) -> bool:
        """Register ``agency`` under its parent (a unit of ``tree`` the token covers); True when it
        is new, False when it was already registered identically. Registering it again is not
        counted against the cap."""
        if agency.code not in tree:
            registered = sum(1 for unit in tree.children(agency.parent) if unit.level == Level.AGENCY)
            if registered >= self.max_per_unit:
                raise TooManyAgencies(
                    f"unit {agency.parent} already has {registered} agencies registered under it, the most "
                    f"one unit may have (BAOCAO_API_MAX_AGENCIES_PER_UNIT={self.max_per_unit})"
                )
        if self.registry is None:
            raise RegistryUnavailable()
        # only in the versions of the tree where this token covers the parent: a code names a unit
        # only within its tree (district 386's token registers under the old 14923, not under the
        # 2025 commune that took its code)
        trees = [t.tree_id for t in tree.versions if agency.parent in t and principal.covers(t, agency.parent)]
        try:
            return await self.registry.register(agency.code, agency.name, agency.parent, trees)
        except (HierarchyError, UnknownUnit) as exc:
            raise AgencyConflict(str(exc)) from None

    async def change(self, code: str, change: AgencyChange, tree: OrgTree) -> None:
        """Apply ``change`` to the agency ``code`` of ``tree`` (the route checked the token's
        admin scope over its parent): NotAnAgency, RegistryUnavailable."""
        if code not in tree or tree.get(code).level != Level.AGENCY:
            raise NotAnAgency(code)
        if self.registry is None:
            raise RegistryUnavailable()
        if change.name is not None and change.name != tree.get(code).name:
            await self.registry.rename(code, change.name)
        if "closed_from" in change.model_fields_set and change.closed_from != tree.closed_from(code):
            await self.registry.close(code, change.closed_from)


def state_of(tree: OrgTree, code: str) -> dict[str, str | None]:
    """What the audit log shows of an agency: its name and closing day."""
    closed = tree.closed_from(code)
    return {"name": tree.get(code).name, "closed_from": closed.isoformat() if closed else None}


def audited_changes(
    before: dict[str, str | None], after: dict[str, str | None]
) -> list[tuple[Action, dict[str, str | None], dict[str, str | None]]]:
    """One audit entry per kind of change between two :func:`state_of`: a rename, a closing (or
    reopening); (action, before, after) each."""
    kinds = ((Action.AGENCY_RENAME, "name"), (Action.AGENCY_CLOSE, "closed_from"))
    return [(action, {key: before[key]}, {key: after[key]}) for action, key in kinds if before[key] != after[key]]
