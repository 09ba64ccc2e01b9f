"""GET /v1/exchange/dataValueSets (JSON) and /v1/exchange/dataValueSets.csv: totals as a DHIS2
data value set, through the mapping of BAOCAO_EXCHANGE_MAPPING (shared/domain/exchange.py).

Each value is a total of a unit's whole subtree, as /v1/units/{code}/totals serves it: the unit's
own, and with ``children=true`` also each child's (DHIS2's ``children=true``, one level: a
drill-down). DHIS2 adds up the values of an org unit's children by itself, so a system that
stores both the unit's value and its children's would count them twice: load one level of them.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from services.api.deps import Components, CurrentPrincipal, Period, Tree, known, query_error
from shared.domain.auth import Scope
from shared.domain.exchange import (
    DEFAULT_MAPPING_PATH,
    MAPPING_SETTING,
    ExchangeError,
    ExchangeMapping,
    data_value_set,
    data_values_csv,
    data_values_from_totals,
    load_mapping,
    to_dhis2_period,
)
from shared.domain.reports import UNIT_CODE_PATTERN
from shared.http.base import authorize, error

PATH = "/v1/exchange/dataValueSets"

router = APIRouter()


class DataValueOut(BaseModel):
    model_config = ConfigDict(extra="allow")  # categoryOptionCombo, attributeOptionCombo when mapped
    dataElement: str
    period: str
    orgUnit: str
    value: str


class DataValueSetOut(BaseModel):
    model_config = ConfigDict(extra="allow")  # dataSet when the mapping names one
    dataValues: list[DataValueOut]


Unit = Annotated[str, Query(pattern=UNIT_CODE_PATTERN, description="the unit whose totals are exported, e.g. 386")]
Series = Annotated[
    str | None, Query(max_length=64, description="one series (study_session); default: every series the mapping has")
]
Children = Annotated[bool, Query(description="also each child's totals (one level below the unit)")]
RESPONSES: dict[int | str, dict[str, Any]] = {
    404: error("No such unit (only for a code the token could see if it existed)"),
    503: error("The exchange mapping cannot be used"),
}


def mapping() -> ExchangeMapping:
    """The mapping BAOCAO_EXCHANGE_MAPPING names (the shipped one when unset); 503 naming the
    file and the key when it cannot be used."""
    try:
        return load_mapping(os.environ.get(MAPPING_SETTING) or str(DEFAULT_MAPPING_PATH))
    except ExchangeError as exc:
        raise HTTPException(503, f"the exchange mapping cannot be used: {exc}") from None


async def exported(
    components: Components,
    principal: CurrentPrincipal,
    tree: Tree,
    unit: str,
    period: str,
    series: str | None,
    children: bool,
) -> tuple[list[dict[str, str]], ExchangeMapping]:
    """The data values of the request, after its checks (read scope, the token's subtree, a known
    unit, a period DHIS2 has, a series of the mapping)."""
    authorize(principal, Scope.READ, tree, unit)
    known(tree, unit)
    try:
        to_dhis2_period(period)
    except ExchangeError as exc:
        raise query_error("period", str(exc), "period") from None
    rules = mapping()
    mapped = sorted({t.series for t in rules.sources})
    if series is not None and series not in mapped:
        raise query_error("series", f"series {series!r} is not in the exchange mapping; one of {mapped}", "series")
    units = [unit] + ([c.code for c in tree.children(unit)] if children else [])
    figures = await components.reader.figures(units, [series] if series else mapped, period)
    catalog = components.reads.catalog
    return data_values_from_totals(figures, period, rules, catalog), rules


@router.get(
    PATH,
    response_model=DataValueSetOut,
    summary="Totals of a unit (and its children) as a DHIS2 data value set, JSON",
    responses=RESPONSES,
)
async def get_data_value_set(
    components: Components,
    principal: CurrentPrincipal,
    tree: Tree,
    unit: Unit,
    period: Period,
    series: Series = None,
    children: Children = False,
) -> DataValueSetOut:
    values, rules = await exported(components, principal, tree, unit, period, series, children)
    return DataValueSetOut.model_validate(data_value_set(values, rules))


@router.get(
    f"{PATH}.csv",
    summary="Totals of a unit (and its children) as a DHIS2 data value set, CSV",
    responses={**RESPONSES, 200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV"}},
    response_class=Response,
)
async def get_data_value_set_csv(
    components: Components,
    principal: CurrentPrincipal,
    tree: Tree,
    unit: Unit,
    period: Period,
    series: Series = None,
    children: Children = False,
) -> Response:
    values, _ = await exported(components, principal, tree, unit, period, series, children)
    name = f"datavalues-{unit}-{period}.csv"
    return Response(
        data_values_csv(values),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
