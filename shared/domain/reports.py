"""Report schemas: what a local unit sends (``ReportIn``) and what travels on Kafka (``ReportEnvelope``).

The per-kind body models are generated from the metric catalog, so a new report kind needs only
a catalog entry. Validation errors name the field (``body.members_attended``) and the problem.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, Union, cast

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    TypeAdapter,
    create_model,
    field_validator,
    model_validator,
)

from shared.domain.catalog import INDICATOR_KIND, Catalog, FieldSpec, KindSpec, load_catalog
from shared.domain.periods import VIETNAM_TZ, PeriodError, has_begun, parse_period

# Report ids are chosen by the client and stable across revisions. No dots or dollar signs: they
# become keys in stored documents.
REPORT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_:/-]{0,79}$"
# Official codes: province 2 digits, district 3, commune 5; agencies are <parent code>-<slug>.
UNIT_CODE_PATTERN = r"^[0-9]{2,5}(-[a-z0-9][a-z0-9_]{0,39})?$"
# A conference a report's unit joined as one of its points: the organiser's unit, a slash, and
# the organiser's report id ("38/38-hn-2021-11-05"). The unit code has no slash: it ends at the first.
CONFERENCE_PATTERN = REPORT_ID_PATTERN.replace("^", "^" + UNIT_CODE_PATTERN[1:-1] + "/", 1)
MAX_REVISION = 1_000_000
EARLIEST_SUBMISSION = datetime(2000, 1, 1, tzinfo=UTC)
# How far ahead of the receipt time a report may reach (future_problems). A period begins at an
# instant (00:00 Vietnam time), so minutes cover a sender's clock running ahead. An event date
# has no time of day: a meeting entered just after midnight on a device a few minutes fast is
# dated "tomorrow" by the server's clock, so one day is allowed; anything further is refused.
PERIOD_CLOCK_SKEW = timedelta(minutes=5)
DATE_SKEW = timedelta(days=1)


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _not_in_future(value: datetime) -> datetime:
    if value < EARLIEST_SUBMISSION:
        raise ValueError("must not be before 2000-01-01")
    if value > datetime.now(UTC) + timedelta(days=1):
        raise ValueError("must not be in the future")
    return value


NfcText = Annotated[str, AfterValidator(_nfc)]


class ReportInBase(BaseModel):
    """The envelope every report shares, whatever its kind."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    report_id: str = Field(
        pattern=REPORT_ID_PATTERN,
        description="Chosen by the sender, the same for every revision of this report.",
        examples=["38-386-14923-ss-2020-12"],
    )
    revision: StrictInt = Field(
        ge=1, le=MAX_REVISION, description="1 for the first version; a correction sends a higher one."
    )
    unit: str = Field(pattern=UNIT_CODE_PATTERN, description="Code of the reporting unit.", examples=["14923"])
    period: str = Field(description="2025-03, 2025-Q1, 2025-H1, 2025 or 2020-2025.", examples=["2020-12"])
    submitted_at: Annotated[AwareDatetime, AfterValidator(_not_in_future)] = Field(
        description="When the unit submitted it, with a time zone."
    )
    withdrawn: StrictBool = Field(
        default=False, description="True withdraws the report: its figures leave every total."
    )

    @field_validator("period")
    @classmethod
    def _period_is_valid(cls, value: str) -> str:
        try:
            parse_period(value)
        except PeriodError as exc:
            raise ValueError(str(exc)) from None
        return value


def _body_field(spec: FieldSpec) -> tuple[Any, Any]:
    if spec.type == "int":
        return (StrictInt, Field(ge=spec.minimum, le=spec.maximum))
    if spec.type == "text":
        return (NfcText | None, Field(default=None, max_length=spec.max_length))
    if spec.type == "date":
        return (date, ...)
    if spec.type == "enum":
        return (Literal[tuple(spec.values)], ...)
    if spec.type == "conference":
        return (
            str | None,
            Field(
                default=None,
                pattern=CONFERENCE_PATTERN,
                description="The conference this unit joined as one of its points: <organiser unit>/<its report_id>",
                examples=["38/38-hn-2021-11-05"],
            ),
        )
    raise ValueError(f"catalog: unknown field type {spec.type!r} for {spec.name}")


def _after_validator(check: Callable[[Any], Any]) -> Callable[..., Any]:
    """``model_validator(mode="after")`` for ``create_model(__validators__=...)``: pydantic types
    that mapping's values as plain callables, and accepts the descriptor the decorator returns."""
    return cast("Callable[..., Any]", model_validator(mode="after")(check))


def _make_body_model(kind: KindSpec) -> type[BaseModel]:
    # Values typed Any: unpacked into create_model, they would otherwise have to fit its keyword
    # arguments too (__doc__, __module__).
    fields: dict[str, Any] = {f.name: _body_field(f) for f in kind.fields}

    def check_rules(self: BaseModel) -> BaseModel:
        for rule in kind.rules:
            low, high = getattr(self, rule.field), getattr(self, rule.at_most)
            if low is not None and high is not None and low > high:
                raise ValueError(f"{rule.field} ({low}) must not exceed {rule.at_most} ({high})")
        return self

    model: type[BaseModel] = create_model(
        f"{kind.name.title().replace('_', '')}Body",
        __config__=ConfigDict(extra="forbid", str_strip_whitespace=True),
        __validators__={"_rules": _after_validator(check_rules)},
        **fields,
    )
    model.__doc__ = kind.title
    return model


def _make_indicator_body(catalog: Catalog) -> type[BaseModel]:
    codes = tuple(catalog.indicators)

    class IndicatorBody(BaseModel):
        """Progress on one indicator of the catalog (body.indicator)."""

        model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
        indicator: Literal[codes]  # type: ignore[valid-type]  # the catalog's codes, read at run time
        value: StrictInt | None = Field(default=None, ge=-(10**12), le=10**12)
        numerator: StrictInt | None = Field(default=None, ge=0, le=10**12)
        denominator: StrictInt | None = Field(default=None, ge=0, le=10**12)
        note: Annotated[NfcText | None, Field(max_length=500)] = None

        @model_validator(mode="after")
        def _matches_indicator(self) -> IndicatorBody:
            ind = catalog.indicators[self.indicator]
            wanted: tuple[str, ...]
            unwanted: tuple[str, ...]
            if ind.combine == "ratio":
                wanted, unwanted = ("numerator", "denominator"), ("value",)
            else:
                wanted, unwanted = ("value",), ("numerator", "denominator")
            for name in wanted:
                v = getattr(self, name)
                if v is None:
                    raise ValueError(f"{name} is required for indicator {self.indicator}")
                if not ind.minimum <= v <= ind.maximum:
                    raise ValueError(
                        f"{name} {v} is outside {ind.minimum}..{ind.maximum} for indicator {self.indicator}"
                    )
            for name in unwanted:
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} is not used by indicator {self.indicator} ({ind.combine})")
            return self

    return IndicatorBody


def _make_report_model(kind: KindSpec, body: type[BaseModel]) -> type[ReportInBase]:
    def check_period(self: Any) -> Any:
        p = parse_period(self.period)
        if p.granularity not in kind.periods:
            allowed = ", ".join(sorted(g.value for g in kind.periods))
            raise ValueError(f"period {self.period}: a {kind.name} report covers a {allowed}")
        if self.body is None:
            if not self.withdrawn:
                raise ValueError("body is required unless the report is withdrawn")
            if kind.name == INDICATOR_KIND:
                raise ValueError("body is required: an indicator report names body.indicator, also when withdrawn")
            return self
        for f in kind.fields:
            if f.within_period:
                day = getattr(self.body, f.name)
                if not p.contains(day):
                    raise ValueError(f"body.{f.name} {day} is outside period {self.period} ({p.start} to {p.end})")
        return self

    # Field types made at run time (a Literal of the kind's name, the kind's body model).
    fields: dict[str, Any] = {"kind": (Literal[kind.name], ...), "body": (body | None, None)}
    model = create_model(
        f"{kind.name.title().replace('_', '')}ReportIn",
        __base__=ReportInBase,
        __validators__={"_period_rules": _after_validator(check_period)},
        **fields,
    )
    model.__doc__ = kind.title
    return model


def build_report_models(catalog: Catalog) -> dict[str, type[ReportInBase]]:
    models = {}
    for name, kind in catalog.kinds.items():
        body = _make_indicator_body(catalog) if name == INDICATOR_KIND else _make_body_model(kind)
        models[name] = _make_report_model(kind, body)
    return models


REPORT_MODELS = build_report_models(load_catalog())
# A union of the models built from the catalog at import: a type only at run time, so the alias
# and its use below are beyond a static checker.
ReportIn = Annotated[  # type: ignore[valid-type]
    Union[tuple(REPORT_MODELS.values())],  # noqa: UP007
    Field(discriminator="kind"),
]
REPORT_ADAPTER: TypeAdapter[Any] = TypeAdapter(ReportIn)  # type: ignore[arg-type]


class ReportEnvelope(BaseModel):
    """A report as it travels on the ``reports`` topic: the validated report plus what ingest
    stamps on it. Units that produce straight to Kafka send the same JSON; ``received_at`` is then
    the broker's timestamp."""

    model_config = ConfigDict(extra="forbid")

    report: dict[str, Any]
    received_at: AwareDatetime
    source: str = "http"


def future_problems(
    report: ReportInBase, received_at: datetime, catalog: Catalog | None = None
) -> list[dict[str, Any]]:
    """What in ``report`` lies after ``received_at`` (the server's receipt time, never the
    sender's): a period that has not begun in Vietnam time, or an event date (a ``date`` field of
    its kind: held_on, adopted_on, ...) later than the receipt day plus :data:`DATE_SKEW`. Each
    problem names its field (``loc``, relative to the report) like a validation error. A
    withdrawal is never refused: it adds no figures, and it is how a unit takes back such a
    report accepted before this rule."""
    if report.withdrawn:
        return []
    problems: list[dict[str, Any]] = []
    period = parse_period(report.period)
    local = received_at.astimezone(VIETNAM_TZ)
    if not has_begun(period, received_at + PERIOD_CLOCK_SKEW):
        problems.append(
            {
                "loc": ["period"],
                "msg": f"period {report.period} has not begun: it starts on {period.start} (Vietnam time) "
                f"and the report was received at {local:%Y-%m-%d %H:%M} Vietnam time",
                "type": "period_not_begun",
            }
        )
    body = getattr(report, "body", None)
    kind = (catalog or load_catalog()).kinds.get(getattr(report, "kind", ""))
    if body is not None and kind is not None:
        latest = (local + DATE_SKEW).date()
        for f in kind.fields:
            day = getattr(body, f.name, None) if f.type == "date" else None
            if isinstance(day, date) and day > latest:
                problems.append(
                    {
                        "loc": ["body", f.name],
                        "msg": f"body.{f.name} {day} is in the future: the report was received on "
                        f"{local.date()} (Vietnam time), and a date may be at most one day later",
                        "type": "date_in_future",
                    }
                )
    return problems
