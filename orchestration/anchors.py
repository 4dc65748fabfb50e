"""The ledger's anchors: each night's chain heads, kept in the run history outside lifecycle.*.

The `ledger_anchor` asset records the heads in its materialisation metadata (key `anchors`); they
are read back here for `lifecycle ledger verify` and the nightly check, so a chain rebuilt inside
the database after an edit still differs from what the history recorded.
"""

from __future__ import annotations

from datetime import datetime

import dagster as dg

from lifecycle.ledger.chain import Head
from lifecycle.ledger.seals import SealAnchor
from orchestration import names

ANCHORS_KEY = "anchors"
SEALS_KEY = "seals"
# Seals are looked for in this many of the check's latest evaluations: a chain whose seals are all
# older (a month of broken or failed checks) is simply re-hashed in full.
SEAL_EVALUATIONS = 60
SHOP_KEY = "shop"  # lifecycle.ledger.chain.shop_identity of the database anchored


def anchor_metadata(heads: list[Head], shop: str) -> dict[str, object]:
    """The materialisation metadata of tonight's anchor: one text per chain, and a table a person reads."""
    return {
        ANCHORS_KEY: dg.MetadataValue.json([head.as_text() for head in heads]),
        SHOP_KEY: shop,
        # The whole hash, not a prefix: the guard's run-log scan recognises a ledger hash it holds
        # (lifecycle/guard/provenance.py), while a new prefix each night was a text no clean pass
        # had compared, which hashed the whole raw zone every night.
        **{head.chain: f"link {head.link_seq}, sha256 {head.link_hash}" for head in heads},
    }


def recorded_anchors(
    instance: dg.DagsterInstance, shop: str, since: datetime | None = None
) -> list[Head]:
    """Every anchor the run history holds for `shop` (since `since`), oldest first; anchors of
    other shop databases sharing the history are not evidence about this one."""
    found: list[Head] = []
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(names.LEDGER_ANCHOR),
                after_timestamp=since.timestamp() if since else None,
            ),
            limit=1000,
            cursor=cursor,
            ascending=True,
        )
        for record in page.records:
            mat = record.asset_materialization
            if mat is None or _text(mat.metadata.get(SHOP_KEY)) != shop:
                continue
            value = mat.metadata.get(ANCHORS_KEY)
            for text in value.value if value is not None else []:
                found.append(Head.from_text(text))
        if not page.has_more:
            return found
        cursor = page.cursor


def _text(value) -> str | None:
    return getattr(value, "value", value)


def seal_metadata(seals: list[SealAnchor], shop: str) -> dict[str, object]:
    """The check's metadata naming tonight's seals (ids and hashes only)."""
    return {SEALS_KEY: dg.MetadataValue.json([s.as_text() for s in seals]), SHOP_KEY: shop}


def recorded_seals(instance: dg.DagsterInstance, shop: str) -> list[SealAnchor]:
    """The seals the latest nightly checks recorded for `shop`, newest first."""
    key = dg.AssetCheckKey(dg.AssetKey(names.LEDGER_ANCHOR), names.LEDGER_CHECK)
    found: list[SealAnchor] = []
    for record in instance.event_log_storage.get_asset_check_execution_history(
        key, limit=SEAL_EVALUATIONS
    ):
        event = record.event.dagster_event if record.event else None
        evaluation = event.event_specific_data if event else None
        metadata = getattr(evaluation, "metadata", None) or {}
        if _text(metadata.get(SHOP_KEY)) != shop or SEALS_KEY not in metadata:
            continue
        found.extend(SealAnchor.from_text(text) for text in metadata[SEALS_KEY].value)
    return found
