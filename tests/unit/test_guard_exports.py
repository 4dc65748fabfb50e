"""Access exports hold personal data by design: the guard proves they are private, inside the export
folder and deleted on time, naming the export, never opening it."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from lifecycle.guard.exports import access_exports
from lifecycle.policy import load_policy
from lifecycle.settings import PROJECT_DIR

POLICY = load_policy(PROJECT_DIR / "policy.yaml")  # export_retention_days: 30
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def export(folder, request_id: int, written: datetime, mode: int = 0o600):
    path = folder / f"request-{request_id}"
    path.mkdir(mode=0o700, parents=True)
    path.chmod(0o700)
    data = path / "export.json"
    data.write_text('{"receiver_email": "wang.fang@example.com"}')
    data.chmod(mode)
    os.utime(path, (written.timestamp(), written.timestamp()))
    return path


def found(result) -> set[tuple[str, str]]:
    return {(f.column, f.kind) for f in result.findings}


def test_private_exports_inside_their_window_pass(tmp_path):
    export(tmp_path, 1, NOW - timedelta(days=3))
    export(tmp_path, 2, NOW - timedelta(days=30))  # the nightly deletes it tonight: a day of grace
    result = access_exports(tmp_path, POLICY, NOW)
    assert result.passed and result.scanned == {"exports": 2, "files": 2}


def test_an_export_readable_by_others_fails(tmp_path):
    export(tmp_path, 7, NOW - timedelta(days=1), mode=0o644)
    result = access_exports(tmp_path, POLICY, NOW)
    assert found(result) == {("request-7/export.json", "not_private")}
    assert "make it 0600" in result.description()


def test_an_export_kept_past_its_retention_fails(tmp_path):
    export(tmp_path, 8, NOW - timedelta(days=31, minutes=1))
    result = access_exports(tmp_path, POLICY, NOW)
    assert found(result) == {("request-8", "kept_too_long")}


def test_a_link_out_of_the_export_folder_fails(tmp_path):
    folder, outside = tmp_path / "exports", tmp_path / "elsewhere"
    folder.mkdir()
    outside.mkdir()
    (folder / "request-9").symlink_to(outside, target_is_directory=True)
    result = access_exports(folder, POLICY, NOW)
    assert found(result) == {("request-9", "outside_folder")}


def test_no_value_of_an_export_is_shown(tmp_path):
    export(tmp_path, 10, NOW - timedelta(days=40), mode=0o644)
    result = access_exports(tmp_path, POLICY, NOW)
    shown = result.description() + result.markdown() + repr(result.metadata())
    assert not result.passed and "wang.fang" not in shown
