#!/usr/bin/env bash
# Checks systemd/pqrelay.service with `systemd-analyze verify` (and, when --security is given,
# prints `systemd-analyze security --offline` exposure scores).
#
#   systemd/verify.sh [--security] [BINARY]
#
# `verify` insists that every Exec*= binary exists, so the unit is copied to a temporary
# directory with /usr/local/bin/pqrelay rewritten to BINARY (default: target/release/pqrelay,
# else target/debug/pqrelay, else /bin/true as a stand-in so the unit's syntax and settings can
# be checked before the relay is built). Any diagnostic about the unit fails the check, not
# only the errors that make `systemd-analyze` exit non-zero. Usable from CI; needs systemd >= 250.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
unit_src="$here/pqrelay.service"
installed_path=/usr/local/bin/pqrelay

security=0
if [[ "${1:-}" == "--security" ]]; then
  security=1
  shift
fi

binary="${1:-}"
if [[ -z "$binary" ]]; then
  for candidate in "$root/target/release/pqrelay" "$root/target/debug/pqrelay"; do
    if [[ -x "$candidate" ]]; then
      binary=$candidate
      break
    fi
  done
fi
if [[ -z "$binary" ]]; then
  # `command -v true` would name the shell builtin: take the file.
  for stand_in in /usr/bin/true /bin/true; do
    [[ -x "$stand_in" ]] && binary=$stand_in && break
  done
  echo "verify.sh: no pqrelay binary built; using $binary as a stand-in for $installed_path"
fi
if [[ ! -x "$binary" ]]; then
  echo "verify.sh: $binary is not an executable file" >&2
  exit 2
fi
binary=$(realpath "$binary")

if ! command -v systemd-analyze >/dev/null; then
  echo "verify.sh: systemd-analyze not found (apt-get install systemd)" >&2
  exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unit="$tmp/pqrelay.service"
sed "s#${installed_path}#${binary}#g" "$unit_src" >"$unit"
if grep -q "$installed_path" "$unit"; then
  echo "verify.sh: failed to rewrite $installed_path" >&2
  exit 2
fi

# --man=no: the unit has no Documentation=man: pages to look up.
status=0
out=$(systemd-analyze verify --man=no "$unit" 2>&1) || status=$?
# Lines about other units (e.g. a host's own broken units) are not ours to fix.
ours=$(printf '%s\n' "$out" | grep -F "pqrelay.service" || true)
if [[ $status -ne 0 || -n "$ours" ]]; then
  printf '%s\n' "$out" >&2
  echo "verify.sh: systemd-analyze verify FAILED for pqrelay.service (exit $status)" >&2
  exit 1
fi
echo "verify.sh: systemd-analyze verify passed for pqrelay.service (ExecStart binary $binary)"

if [[ $security -eq 1 ]]; then
  # Informational: exposure score as systemd computes it for the unit file alone.
  systemd-analyze security --offline=yes --no-pager "$unit" || true
fi
