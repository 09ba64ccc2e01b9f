"""Which provinces each partition counts, recorded once per deployment, checked at every start.

The aggregator's state is kept per partition (state.py, snapshots.py), and a partition holds the
provinces shared/domain/partitions.py places there. State written under another placement (an
earlier version's CRC-32 one, or another partition count) holds other provinces per partition:
counting on with it would put reports beside the wrong history. So the placement's fingerprint is
recorded in MongoDB (``aggregate_placement``, one document per reports topic) when the first worker
starts on an empty changelog, and a worker whose placement differs from the recorded one refuses to
start, naming the tool that moves the state (``python -m tools.partitions grow --to N``, which
records the new placement when it is done).
"""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient, MongoClient

from shared.domain.partitions import fingerprint

PLACEMENTS = "aggregate_placement"


class PlacementMismatch(RuntimeError):
    pass


def _refusal(reports: str, partitions: int, recorded: dict[str, Any] | None) -> str:
    what = (
        "state from before the placement was recorded"
        if recorded is None
        else f"state placed for {recorded.get('partitions')} partitions ({recorded.get('fingerprint')})"
    )
    return (
        f"{reports}: the changelog holds {what}, not this version's placement of {partitions} partitions "
        f"({fingerprint(partitions)}); stop ingest and the workers and run "
        f"`python -m tools.partitions grow --to {partitions}` to move the state, then start again"
    )


async def check_placement(
    client: AsyncMongoClient[dict[str, Any]], database: str, reports: str, partitions: int, changelog_empty: bool
) -> None:
    """Record the placement if this is the deployment's first start; raise PlacementMismatch if the
    state was written under another one."""
    placements = client[database][PLACEMENTS]
    want = fingerprint(partitions)
    recorded = await placements.find_one({"_id": reports})
    if recorded is None and changelog_empty:
        await placements.update_one(
            {"_id": reports}, {"$setOnInsert": {"fingerprint": want, "partitions": partitions}}, upsert=True
        )
        recorded = await placements.find_one({"_id": reports})
    if recorded is None or recorded.get("fingerprint") != want:
        raise PlacementMismatch(_refusal(reports, partitions, recorded))


def record_placement(client: MongoClient[dict[str, Any]], database: str, reports: str, partitions: int) -> None:
    """The state now follows this version's placement of ``partitions`` (tools/partitions.py)."""
    client[database][PLACEMENTS].replace_one(
        {"_id": reports}, {"fingerprint": fingerprint(partitions), "partitions": partitions}, upsert=True
    )
