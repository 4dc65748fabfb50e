#!/usr/bin/env bash
# Installs Debian's pg_repack for the machine's PostgreSQL (client and extension files) when it is
# missing, quietly, as root (directly or through sudo -n). Where it cannot (no root, no network,
# not Debian) it says so and returns 0: the erasure then uses VACUUM FULL and its pg_repack test
# skips with the reason. The shop database still needs `CREATE EXTENSION pg_repack` by a superuser.
set -uo pipefail
command -v pg_repack >/dev/null 2>&1 && exit 0
command -v apt-get >/dev/null 2>&1 || { echo "pg_repack: no apt-get here; erasure uses VACUUM FULL" >&2; exit 0; }
version=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1)
[ -n "$version" ] || { echo "pg_repack: no Debian PostgreSQL server here" >&2; exit 0; }
as_root=""
[ "$(id -u)" -eq 0 ] || as_root="sudo -n"
log=$(mktemp)
if ! { $as_root apt-get update -qq && $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-$version-repack"; } >"$log" 2>&1; then
    echo "pg_repack: could not install postgresql-$version-repack (log: $log); erasure uses VACUUM FULL" >&2
fi
exit 0
