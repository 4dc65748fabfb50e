"""Keyed fingerprints on real PostgreSQL: the SQL HMAC is HMAC-SHA256, the SQL and Python
tokenizers agree, phones match across formats, and the key stays outside the database."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from concurrent.futures import ProcessPoolExecutor

import pytest
import sqlalchemy as sa

from lifecycle.guard.key import GuardKey, GuardKeyError, hmac_sql, load_key
from lifecycle.guard.tokens import SQL_PARAMS, phone_variants, tokens, tokens_sql
from lifecycle.settings import Settings

KEY = GuardKey(b"test-guard-key-not-for-production")

TEXTS = [
    "Wang Fang",
    "Please call Wang Fang on +86-138-0013-8000 before noon.",
    "客户王芳来电，要求退货 (138 0013 8000)",
    "mail: Li.Na@Example.org; cc jj@example.net",
    "12751 Anna Viaduct Suite 434, ÉMILE Zoë",
    "GIFT TAG JOSÉ MÜLLER, ΟΔΥΣΣΕΑΣ ПЁТР İSTANBUL ǅ Ǆ",
    "order 100042 shipped 12.50 EUR on 2026-06-01T12:00:00+00:00",
    "(212) 555-0123 or 0049 30 1234567 or 06 12 34 56 78",
    "SKU-0042 x 3",
    "",
    "   ",
]


def sql_tokens(engine, text: str) -> set[tuple[str, str]]:
    sql = f"WITH {tokens_sql('SELECT CAST(:text AS text) AS v, 1 AS n')} SELECT kind, token FROM tokens"
    with engine.connect() as conn:
        return set(conn.execute(sa.text(sql), {"text": text, **SQL_PARAMS}).all())


def test_sql_hmac_equals_pythons_hmac_sha256(engine):
    texts = ["v:wang fang", "p:13800138000", "v:王芳", ""]
    with engine.connect() as conn:
        got = [
            conn.execute(sa.text(f"SELECT {hmac_sql(':t')}"), {"t": t, **KEY.params()}).scalar()
            for t in texts
        ]
    assert got == [hmac.new(KEY.key, t.encode(), hashlib.sha256).digest() for t in texts]
    long_key = GuardKey(b"k" * 100)  # longer than a block: hashed first, as RFC 2104 says
    with engine.connect() as conn:
        digest = conn.execute(
            sa.text(f"SELECT {hmac_sql(':t')}"), {"t": "x", **long_key.params()}
        ).scalar()
    assert digest == hmac.new(long_key.key, b"x", hashlib.sha256).digest()


@pytest.mark.parametrize("text", TEXTS)
def test_sql_and_python_tokenizers_agree(engine, text):
    assert sql_tokens(engine, text) == tokens(text)


def test_tokens_hold_the_name_the_phone_and_the_email_inside_a_sentence():
    found = tokens("Please call Wang Fang on +86-138-0013-8000, or mail Li.Na@Example.org")
    assert ("in_text", "v:wang fang") in found
    assert ("phone", "p:13800138000") in found and ("phone", "p:8613800138000") in found
    assert ("email", "v:li na example org") in found
    assert ("in_text", "v:王芳") in tokens("客户王芳来电")


@pytest.mark.parametrize(
    "a, b",
    [
        ("+86 138 0013 8000", "138-0013-8000"),
        ("+86 138 0013 8000", "13800138000"),
        ("(212) 555-0123", "+1 212 555 0123"),
        ("030 1234567", "+49 30 1234567"),
        ("06 12 34 56 78", "+33 6 12 34 56 78"),
        ("020 7946 0958", "0044 20 7946 0958"),
    ],
)
def test_one_phone_in_two_formats_shares_a_digit_form(a, b):
    assert phone_variants(a) & phone_variants(b)


@pytest.mark.parametrize(
    "a, b", [("(212) 555-0123", "(212) 555-0124"), ("+86 138 0013 8000", "+86 139 0013 8000")]
)
def test_different_phones_share_no_digit_form(a, b):
    assert not phone_variants(a) & phone_variants(b)


# ---------------------------------------------------------------- the key


def settings_at(tmp_path, secret: str | None = None) -> Settings:
    env = {"LIFECYCLE_HOME": str(tmp_path / "home")}
    if secret is not None:
        env["LIFECYCLE_GUARD_SECRET"] = secret
    return Settings.from_env(env)


def key_for(settings: Settings) -> GuardKey:
    return load_key(settings.guard_secret, settings.guard_key_file)


def test_key_file_is_created_owner_only_and_reused(tmp_path):
    settings = settings_at(tmp_path)
    first = key_for(settings)
    assert stat.S_IMODE(os.stat(settings.guard_key_file).st_mode) == 0o600
    assert key_for(settings) == first and len(first.key) == 32
    assert "key=" not in repr(first) and repr(settings).count("guard_secret") == 0


def test_processes_racing_to_make_the_key_file_all_use_one_key_and_leave_no_partial_file(tmp_path):
    settings = settings_at(tmp_path)
    with ProcessPoolExecutor(4) as pool:
        keys = {key.key for key in pool.map(key_for, [settings] * 8)}
    assert keys == {key_for(settings).key}
    assert [p.name for p in settings.guard_key_file.parent.iterdir()] == ["guard.key"]


def test_a_key_file_others_can_read_is_refused(tmp_path):
    settings = settings_at(tmp_path)
    key_for(settings)
    os.chmod(settings.guard_key_file, 0o644)
    with pytest.raises(GuardKeyError, match=r"readable by others \(mode 644\); run `chmod 600"):
        key_for(settings)


def test_the_secret_from_the_environment_wins_and_must_be_long(tmp_path):
    assert key_for(settings_at(tmp_path, "s" * 40)).key == b"s" * 40
    assert not (tmp_path / "home" / "guard.key").exists()
    with pytest.raises(GuardKeyError, match="shorter than 16"):
        key_for(settings_at(tmp_path, "short"))
