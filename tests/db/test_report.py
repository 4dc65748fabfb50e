"""The compliance report's figures are the ledger's, the raw tables' and Dagster's own, and hold no personal value."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from lifecycle.report.render import render
from orchestration.reporting import report_from_history
from tests.db.test_erasure import roots
from tests.nightly import run_nightly
from tests.shop import PERSONAL, add_case, add_delivered, add_order, leaked, purge_swallowed

DAY, HOUR = timedelta(days=1), timedelta(hours=1)
CASE_NOTE = "Customer Li Lei called from 139 1234 5678 about the refund"


def now():
    return datetime.now(UTC)


def seed(engine, start=1):
    """Two due orders, one kept by an open case, one waiting, one that cannot be judged."""
    t = now()
    with engine.begin() as conn:
        add_delivered(conn, start, t - 100 * DAY)
        add_delivered(conn, start + 1, t - 45 * DAY)
        add_delivered(conn, start + 2, t - 80 * DAY)
        add_case(conn, start + 2, start + 2, t - 75 * DAY, closed_at=None, note=CASE_NOTE)
        add_delivered(conn, start + 3, t - 3 * DAY)
        add_order(conn, start + 4, "delivered", t - 50 * DAY)  # delivered without delivered_at


def build(engine, policy, instance, since=None, ui_url=None):
    t = now()
    return report_from_history(engine, policy, instance, since or t - 30 * DAY, t, ui_url)


def test_orders_cleared_per_night_equal_the_ledger(
    engine, policy, dagster_settings, dagster_instance
):
    seed(engine)
    first = run_nightly(dagster_settings, dagster_instance)
    with engine.begin() as conn:
        add_delivered(conn, 10, now() - 31 * DAY)
    second = run_nightly(dagster_settings, dagster_instance, trigger="cli")
    report = build(engine, policy, dagster_instance)
    with engine.connect() as conn:
        ledger = dict(
            conn.execute(
                sa.text("SELECT run_id, count(*) FROM lifecycle.purge_ledger GROUP BY 1")
            ).all()
        )
    nights = {n.run_id: n for n in report.nights if n.run_id}
    assert (
        {run_id: n.purged for run_id, n in nights.items()}
        == ledger
        == {first.run_id: 2, second.run_id: 1}
    )
    night = nights[second.run_id]
    assert (night.result, night.started_by, night.policy_version, night.policy_hash) == (
        "succeeded",
        "cli",
        policy.version,
        policy.short_hash,
    )
    assert night.checks_passed == [
        "cleared_orders_hold_no_personal_data",
        "erasure_within_deadline",
        "no_overdue_personal_data",
    ]
    assert night.checks_failed == []


def test_a_night_whose_purge_run_was_marked_killed_shows_killed(
    engine, policy, dagster_settings, dagster_instance
):
    seed(engine)
    run = run_nightly(dagster_settings, dagster_instance)
    # What the next purge run does to a run whose process died (lifecycle/retention/liveness.py).
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE lifecycle.purge_runs SET status = 'killed' WHERE run_id = :r"),
            {"r": run.run_id},
        )
    report = build(engine, policy, dagster_instance)
    [night] = [n for n in report.nights if n.run_id == run.run_id]
    assert night.result == "killed" and night.purged == 2
    assert "killed" in render(report, "md")


def test_kept_by_open_case_and_not_judged_match_the_raw_tables(
    engine, policy, dagster_settings, dagster_instance
):
    seed(engine)
    run_nightly(dagster_settings, dagster_instance)
    [night] = [n for n in build(engine, policy, dagster_instance).nights if n.run_id]
    with engine.connect() as conn:
        open_case = conn.execute(
            sa.text("""
            SELECT count(DISTINCT o.order_id) FROM shop.orders o JOIN shop.after_sales_cases c USING (order_id)
            WHERE c.closed_at IS NULL AND o.delivered_at <= now() - interval '30 days'""")
        ).scalar()
        not_judged = conn.execute(
            sa.text(
                "SELECT count(*) FROM shop.orders WHERE status = 'delivered' AND delivered_at IS NULL"
            )
        ).scalar()
    assert (night.kept_by_open_case, night.anomalies) == (open_case, not_judged) == (1, 1)


def test_overdue_backlog_is_the_orders_past_their_window_still_holding_data(
    engine, policy, dagster_settings, dagster_instance
):
    seed(engine)
    run_nightly(dagster_settings, dagster_instance)
    with engine.begin() as conn:  # arrive after the run: one long overdue, one due only an hour ago
        add_delivered(conn, 20, now() - 30 * DAY - 27 * HOUR)
        add_delivered(conn, 21, now() - 30 * DAY - HOUR)
    report = build(engine, policy, dagster_instance)
    with engine.connect() as conn:
        raw = conn.execute(
            sa.text("""
            SELECT count(*) FROM shop.orders o WHERE purged_at IS NULL AND receiver_name IS NOT NULL
              AND status = 'delivered' AND delivered_at <= now() - interval '30 days'
              AND NOT EXISTS (SELECT 1 FROM shop.after_sales_cases c WHERE c.order_id = o.order_id)""")
        ).scalar()
    [night] = [n for n in report.nights if n.run_id]
    assert night.overdue_after == 0
    assert report.overdue_now == raw == 2
    assert report.overdue_past_grace == 1
    assert [ok for ok, text in report.verdict() if text.startswith("Now:")] == [False]


def test_a_failed_check_leaves_its_night_marked_with_what_stayed_overdue(
    engine, policy, dagster_settings, dagster_instance
):
    seed(engine)
    with purge_swallowed(engine, 1):
        result = run_nightly(dagster_settings, dagster_instance)
    report = build(engine, policy, dagster_instance)
    [night] = [n for n in report.nights if n.run_id]
    assert night.run_id == result.run_id and night.result == "failed"
    assert (night.checks_failed, night.overdue_after, night.erasure) == (
        ["no_overdue_personal_data"],
        1,
        "not run",
    )
    assert report.checks == {
        "no_overdue_personal_data": {"passed": 0, "failed": 1},
        "cleared_orders_hold_no_personal_data": {"passed": 1, "failed": 0},
    }
    problems = [text for ok, text in report.verdict() if not ok]
    assert any("Checks failed" in text for text in problems)
    assert any("still held personal data afterwards" in text for text in problems)


def installed(engine, at):
    """Records when lifecycle was installed on the test shop (each test starts with it empty)."""
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO lifecycle.installation VALUES (:at)"), {"at": at})


def test_days_without_a_successful_run_are_named(
    engine, policy, dagster_settings, dagster_instance, policy_file
):
    seed(engine)
    installed(engine, now() - 10 * DAY)
    bad = policy_file('version: "1"\nraw:\n  orders:\n    personal_columns: [receiver_nam]\n')
    assert not run_nightly(dagster_settings, dagster_instance, policy_path=bad).success
    assert run_nightly(dagster_settings, dagster_instance).success
    today = now().date()
    report = build(engine, policy, dagster_instance, since=now() - 3 * DAY)
    assert [d.day for d in report.days] == [today - timedelta(days=k) for k in (3, 2, 1, 0)]
    assert report.days_not_kept == [today - timedelta(days=k) for k in (3, 2, 1)]
    assert [(n.day, n.result) for n in report.nights] == [
        (today - timedelta(days=3), "no run"),
        (today - timedelta(days=2), "no run"),
        (today - timedelta(days=1), "no run"),
        (today, "failed"),
        (today, "succeeded"),
    ]
    # Judged: the three days without a success, and today, which has one.
    assert not report.verdict()[0][0] and "3 of 4 days" in report.verdict()[0][1]
    # No daemon ran the alert sensors: the failed run raised no alert, which was reported as
    # "No alert was raised." in green.
    [(ok, text)] = [(ok, t) for ok, t in report.verdict() if "alert" in t]
    assert not ok and text.startswith("1 failed nightly run raised no alert")
    assert "dagster-daemon" in text


def test_physical_erasure_comes_from_the_erasure_log(
    engine, policy, dagster_settings, dagster_instance
):
    seed(engine)
    first = run_nightly(dagster_settings, dagster_instance)
    second = run_nightly(dagster_settings, dagster_instance)  # nothing new purged: no rewrite
    nights = {n.run_id: n for n in build(engine, policy, dagster_instance).nights if n.run_id}
    with engine.connect() as conn:
        erased = conn.execute(sa.text("SELECT run_id FROM lifecycle.erasure_runs")).scalars().all()
    assert erased == [first.run_id]
    assert re.fullmatch(r"done \(.+ → .+\)", nights[first.run_id].erasure)
    assert nights[second.run_id].erasure == "not needed"


def test_chart_days_add_up_to_the_ledger(engine, policy, dagster_settings, dagster_instance):
    seed(engine)
    run_nightly(dagster_settings, dagster_instance)
    report = build(engine, policy, dagster_instance)
    with engine.connect() as conn:
        per_day = dict(
            conn.execute(
                sa.text(
                    "SELECT (purged_at AT TIME ZONE 'UTC')::date, count(*) FROM lifecycle.purge_ledger GROUP BY 1"
                )
            ).all()
        )
    assert {d.day: d.purged for d in report.days if d.purged} == per_day == {now().date(): 2}
    assert report.days[-1].overdue_after_last_run == 0 and report.days[-1].successful_runs == 1
    assert len(report.days) == 31


@pytest.mark.parametrize("fmt", ["html", "md", "json"])
def test_the_report_holds_no_personal_value(
    engine, policy, dagster_settings, dagster_instance, fmt
):
    seed(engine)  # every order carries tests.shop.PERSONAL; the open case carries CASE_NOTE
    run_nightly(dagster_settings, dagster_instance)
    with engine.begin() as conn:
        add_delivered(conn, 30, now() - 40 * DAY)  # overdue, still holding its data at report time
    text = render(build(engine, policy, dagster_instance, ui_url="http://127.0.0.1:3000"), fmt)
    with engine.connect() as conn:
        held = conn.execute(
            sa.text("SELECT count(*) FROM shop.orders WHERE receiver_name = :n"),
            {"n": PERSONAL["receiver_name"]},
        ).scalar()
    assert held >= 3  # the values are really there to leak
    assert not leaked(
        text.lower(), [v.lower() for v in (*PERSONAL.values(), CASE_NOTE, "139 1234 5678")]
    )


def test_the_html_page_is_self_contained_and_links_runs_to_the_ui(
    engine, policy, dagster_settings, dagster_instance
):
    seed(engine)
    result = run_nightly(dagster_settings, dagster_instance)
    page = render(build(engine, policy, dagster_instance, ui_url="http://127.0.0.1:3000/"), "html")
    assert page.count("<svg") == 2 and "<script" not in page
    assert not re.search(r'(src|href)="(?!http://127\.0\.0\.1:3000/runs/)', page)
    assert f'href="http://127.0.0.1:3000/runs/{result.run_id}"' in page


def test_requests_answered_and_overdue_come_from_shop_data_requests(
    engine, policy, dagster_instance
):
    t = now()
    with engine.begin() as conn:
        for request_id, received, completed, status in (
            (1, t - 20 * DAY, t - 18 * DAY, "done"),  # answered in time
            (2, t - 25 * DAY, t - 2 * DAY, "done"),  # answered after the 15-day deadline
            (3, t - 16 * DAY, None, "received"),  # open and overdue
            (4, t - 2 * DAY, None, "in_progress"),  # open, not yet due
        ):
            conn.execute(
                sa.text("""
                INSERT INTO shop.data_requests (request_id, customer_id, kind, received_at, status, completed_at)
                VALUES (:r, 1, 'access', :received, :status, :completed)"""),
                dict(r=request_id, received=received, status=status, completed=completed),
            )
    report = build(engine, policy, dagster_instance)
    r = report.requests
    assert (r.received, r.answered, r.answered_late, r.open_now, r.overdue_now) == (4, 2, 1, 2, 1)
    assert r.overdue_request_ids == [3]
    assert {d.day: d.requests_answered for d in report.days if d.requests_answered} == {
        (t - 18 * DAY).date(): 1,
        (t - 2 * DAY).date(): 1,
    }


def test_a_shop_without_a_requests_table_says_so(engine, policy, dagster_instance):
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE shop.data_requests RENAME TO data_requests_elsewhere"))
    try:
        report = build(engine, policy, dagster_instance)
    finally:
        with engine.begin() as conn:
            conn.execute(
                sa.text("ALTER TABLE shop.data_requests_elsewhere RENAME TO data_requests")
            )
    assert report.requests is None
    assert "no `shop.data_requests` table" in render(report, "md")


def test_alerts_raised_in_the_period_are_listed(engine, policy, dagster_instance):
    with engine.begin() as conn:
        conn.execute(
            sa.text("""INSERT INTO lifecycle.alerts (kind, dedupe_key, run_id, message, delivered_at)
                                VALUES ('run_failed', 'r1', 'r1', 'nightly run r1 failed', now())""")
        )
    report = build(engine, policy, dagster_instance)
    assert [(a.kind, a.run_id, a.delivered) for a in report.alerts] == [("run_failed", "r1", True)]
    assert "1 alert was raised" in " ".join(text for _, text in report.verdict())


def test_forecast_days_are_listed_even_when_nothing_becomes_due(engine, policy, dagster_instance):
    report = build(engine, policy, dagster_instance)
    assert list(report.forecast)[0] == now().date() and len(report.forecast) == 31
    assert set(report.forecast.values()) == {0}
    assert isinstance(list(report.forecast)[0], date)


def test_a_shop_installed_yesterday_that_ran_every_night_opens_green(
    engine, policy, dagster_settings, dagster_instance
):
    installed(engine, now() - DAY)
    run_nightly(dagster_settings, dagster_instance)
    report = build(engine, policy, dagster_instance)
    ok, first = report.verdict()[0]
    today = now().date()
    assert (
        ok
        and "(1 day, today included)" in first
        and first.startswith("A nightly run succeeded on every day since the shop was installed")
    )
    assert report.days_not_kept == [] and today > report.installed_at.date()


def test_nights_before_installation_are_not_judged_and_missed_ones_are(
    engine, policy, dagster_settings, dagster_instance
):
    installed(engine, now() - 3 * DAY)
    run_nightly(dagster_settings, dagster_instance)
    report = build(engine, policy, dagster_instance)
    today = now().date()
    # The installation day (no run on it) is not owed a run; the two days after it are.
    assert report.days_not_kept == [today - timedelta(days=2), today - timedelta(days=1)]
    ok, first = report.verdict()[0]
    assert not ok and "did not succeed on 2 of 3 days since the shop was installed" in first
    assert {n.result for n in report.nights if n.day < today - timedelta(days=3)} == {
        "not installed yet"
    }
    md = render(report, "md")
    assert "not installed yet (27 days)" in md
    assert f"| {today - timedelta(days=1)} | 0 | 0 | – | no run | 0 |" in md


def earlier_today() -> datetime:
    """A few minutes ago, but today (UTC) even just after midnight."""
    t = now()
    return max(t - timedelta(minutes=5), datetime.combine(t.date(), datetime.min.time(), UTC))


def test_a_shop_installed_today_whose_runs_all_failed_is_red_and_its_day_says_so(
    engine, policy, dagster_settings, dagster_instance, policy_file
):
    """Both of today's nightly runs failed on a shop installed today. At a glance it read "OK: A
    nightly run succeeded on every day since the shop was installed on … (0 days)", and the
    day's row "no run"."""
    installed(engine, earlier_today())
    bad = policy_file('version: "1"\nraw:\n  orders:\n    personal_columns: [receiver_nam]\n')
    for _ in range(2):
        assert not run_nightly(dagster_settings, dagster_instance, policy_path=bad).success
    report = build(engine, policy, dagster_instance)
    today = now().date()
    ok, first = report.verdict()[0]
    assert ok is False
    assert first == (
        f"The nightly run did not succeed on 1 of 1 day since the shop was installed on {today}: "
        f"no run succeeded on {today} (2 runs, none succeeded)."
    )
    md = render(report, "md")
    assert f"- **ATTENTION**: {first}" in md and "(0 days)" not in md
    assert f"| {today} | 0 | 0 | – | 0 of 2, last failed | 0 |" in md
    assert report.nights_line() == (ok, first)  # the line the record of processing quotes


def test_a_shop_installed_today_with_no_finished_run_is_not_judged_green(
    engine, policy, dagster_instance
):
    installed(engine, earlier_today())
    report = build(engine, policy, dagster_instance)
    ok, first = report.verdict()[0]
    assert ok is None and first.startswith(
        f"No nightly run has finished since the shop was installed on {now().date()} and no day "
        "that owes one has ended: nothing to judge yet"
    )
    assert f"- NOTE: {first}" in render(report, "md")
    assert f'<li class="unknown">○ {first}</li>' in render(report, "html")
    assert report.as_dict()["verdict"][0] == {"ok": None, "text": first}


def test_a_day_whose_last_run_failed_after_a_success_is_not_green(engine, policy):
    """The day's last finished nightly run decides: a failure after a success leaves the day red,
    a success after a failure (a re-run) makes it green."""
    from lifecycle.report.build import build_report
    from lifecycle.runs import RunSummary

    t = datetime.combine(now().date(), datetime.min.time(), UTC)
    installed(engine, t - 3 * DAY + HOUR)

    def run(run_id, at, status):
        return RunSummary(run_id, status, at, at + HOUR, trigger="schedule")

    runs = [
        run("d2-ok", t - 2 * DAY + 2 * HOUR, "succeeded"),
        run("d1-ok", t - DAY + 2 * HOUR, "succeeded"),
        run("d1-bad", t - DAY + 14 * HOUR, "failed"),
        run("d0-bad", t + 2 * HOUR / 60, "failed"),
        run("d0-ok", t + 3 * HOUR / 60, "succeeded"),
    ]
    report = build_report(engine, policy, runs, t - 3 * DAY, t + 4 * HOUR / 60)
    yesterday = (t - DAY).date()
    ok, first = report.verdict()[0]
    assert not ok and first == (
        f"The nightly run did not succeed on 1 of 3 days since the shop was installed on "
        f"{(t - 3 * DAY).date()}: the last run failed after one had succeeded on {yesterday}."
    )
    md = render(report, "md")
    assert f"| {yesterday} | 0 | 0 | – | 1 of 2, last failed | 0 |" in md
    assert f"| {t.date()} | 0 | 0 | – | 1 of 2 | 0 |" in md
    assert report.days_not_kept == [yesterday]
    report = build_report(engine, policy, runs[:2] + runs[3:], t - 3 * DAY, t + 4 * HOUR / 60)
    assert report.nights_line() == (
        True,
        f"A nightly run succeeded on every day since the shop was installed on "
        f"{(t - 3 * DAY).date()} (3 days, today included).",
    )


def test_each_check_is_listed_with_what_it_proves(
    engine, policy, dagster_settings, dagster_instance
):
    run_nightly(dagster_settings, dagster_instance)
    sentence = "No order past its window still holds personal fields once the purge has run."
    t = now()
    report = report_from_history(engine, policy, dagster_instance, t - 30 * DAY, t)
    for fmt in ("html", "md", "json"):
        assert sentence in render(report, fmt)
    md = render(report, "md")
    assert "(no description" not in md  # every check of the night has its sentence
    assert f"| no_overdue_personal_data | {sentence} | 1 | 0 |" in md
    assert "|---|---|---:|---:|" in md  # passes and failures right-aligned under their headers
    html = render(report, "html")
    assert '<th class="n">Passed</th><th class="n">Failed</th>' in html
    assert "th.n,td.n{text-align:right" in html


def test_an_owed_rewrite_of_pg_statistic_is_in_the_verdict(engine, policy, dagster_instance):
    """pg_statistic's owed rewrite (lifecycle.statistics_erasures) is a pending erasure of its own,
    named without a count of changes, and past the deadline it turns the line red."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("""INSERT INTO lifecycle.statistics_erasures (run_id, outcome, owed_since)
                       VALUES ('r1', 'pending: lock on pg_statistic not granted within 30 s',
                               now() - interval '50 hours')""")
        )
    report = build(engine, policy, dagster_instance)
    [(ok, text)] = [(ok, t) for ok, t in report.verdict() if "Erasure from disk pending" in t]
    assert not ok and "pg_catalog.pg_statistic;" in text and "0 changes" not in text
    assert "the oldest cleared 50 hours ago (deadline 48 hours)" in text


def test_pending_erasure_is_in_the_verdict(engine, policy, dagster_settings, dagster_instance):
    """The report reads the retention lane's backlog, judged against its erasure deadline."""
    assert policy.retention.erasure_deadline_hours == 48
    with engine.begin() as conn:  # cleared 50 hours ago, and no rewrite of the files since
        conn.execute(
            sa.text("""INSERT INTO lifecycle.purge_ledger (run_id, order_id, purged_at, recorded_at,
                       action, reason, policy_version, policy_hash, cleared_columns)
                       VALUES ('r1', 99, now(), now() - interval '50 hours', 'purge', 'erase_request',
                               '1', 'h', ARRAY['receiver_name'])""")
        )
    report = build(engine, policy, dagster_instance)
    # On a partitioned shop each partition is named (an order no longer there: every partition).
    orders = [
        p.relation for p in report.pending_erasure if roots(engine, [p.relation]) == {"shop.orders"}
    ]
    assert orders
    [(ok, text)] = [(ok, t) for ok, t in report.verdict() if "Erasure from disk pending" in t]
    assert not ok and all(f"{relation} (1 change)" in text for relation in orders)
    assert "the oldest cleared 50 hours ago (deadline 48 hours)" in text
    with engine.begin() as conn:  # within the deadline the wait is normal: green
        conn.execute(
            sa.text("UPDATE lifecycle.purge_ledger SET recorded_at = now() - interval '30 hours'")
        )
    report = build(engine, policy, dagster_instance)
    [(ok, text)] = [(ok, t) for ok, t in report.verdict() if "Erasure from disk pending" in t]
    assert ok and "30 hours ago" in text
    seed(engine)
    run_nightly(dagster_settings, dagster_instance)  # purges, then rewrites: nothing overdue
    report = build(engine, policy, dagster_instance)
    [(ok, _text)] = [(ok, t) for ok, t in report.verdict() if "data files" in t]
    assert ok


def test_counts_of_one_read_as_one(engine, policy, dagster_settings, dagster_instance):
    with engine.begin() as conn:
        add_delivered(conn, 1, now() - 40 * DAY)  # overdue for ten days, arrives after no run
    report = build(engine, policy, dagster_instance)
    text = " ".join(t for _, t in report.verdict())
    assert (
        "Now: 1 order has been past its window for more than 26 hours; 1 is past it in all" in text
    )
    assert "1 orders" not in text and "1 are" not in text


def test_killed_purge_runs_and_failed_requests_are_named(engine, policy, dagster_instance):
    """A purge run whose process died and a request the database refused each turn a line red."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("""INSERT INTO lifecycle.purge_runs (run_id, started_at, as_of, policy_version,
                       policy_hash, status) VALUES ('dead-run', now() - interval '2 hours', now(), '1',
                       'h', 'killed'), ('old-dead', now() - interval '90 days', now(), '1', 'h',
                       'killed')""")
        )
        conn.execute(
            sa.text("""INSERT INTO shop.data_requests (request_id, customer_id, kind, received_at,
                       status) VALUES (41, 1, 'erase', now() - interval '1 day', 'failed')""")
        )
    verdict = build(engine, policy, dagster_instance).verdict()
    killed = [(ok, t) for ok, t in verdict if "marked killed" in t]
    assert killed == [
        (
            False,
            "1 purge run died before recording its end (marked killed: dead-run); the next run "
            "resumed the work.",
        )
    ]
    [(ok, text)] = [(ok, t) for ok, t in verdict if "failed:" in t]
    assert not ok and "1 data request failed" in text and "request ids 41" in text


def test_accepted_findings_are_named_as_the_last_run_reported_them(engine, policy):
    """Accepted findings (CheckResult.accepted) appear with their counts, never summed over nights."""
    from lifecycle.report.build import build_report
    from lifecycle.runs import RecordedCheck, RunSummary

    now = datetime.now(UTC)

    def night(run_id, hours_ago, figures):
        check = RecordedCheck("no_personal_data_in_analytics", True, "analytics", figures)
        created = now - timedelta(hours=hours_ago)
        return RunSummary(run_id, "succeeded", created, created, checks=[check])

    runs = [
        night("n1", 50, {"accepted_count": 2, "accepted_rows": 30}),
        night("n2", 26, {"accepted_count": 1, "accepted_rows": 7}),
    ]
    report = build_report(engine, policy, runs, now - timedelta(days=3), now)
    assert report.accepted == {"no_personal_data_in_analytics": (1, 7)}
    [(ok, text)] = [(ok, t) for ok, t in report.verdict() if t.startswith("Accepted findings")]
    assert ok and "no_personal_data_in_analytics 1 finding, 7 rows." in text
    runs.append(night("n3", 2, {}))  # the exception was resolved: nothing accepted any more
    report = build_report(engine, policy, runs, now - timedelta(days=3), now)
    assert report.accepted == {}
    assert not [t for _ok, t in report.verdict() if t.startswith("Accepted findings")]
