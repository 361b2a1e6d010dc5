#!/usr/bin/env bash
# Offline checks of the AWS templates (deploy/aws/README.md):
#
#   deploy/aws/check.sh PYTHON BIN
#
# PYTHON is a virtualenv's python (cfn-lint, checkov and PyYAML are pip-installed into it when
# missing); BIN is the pqrelay binary. Runs cfn-lint over every template (no error, no
# warning), checkov over deploy/aws/ (no failed check; skips carry a reason in the template and
# are listed in README.md), then deploy/aws/test_templates.py BIN (which reads the relay's
# field table from `BIN config-fields --json`). Nothing talks to AWS; checkov is told not to
# download anything.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 PYTHON BIN" >&2
  exit 2
fi
python=$1
bin=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv_bin=$(dirname "$python")

if ! "$python" -c 'import yaml, cfnlint, checkov' 2>/dev/null; then
  "$python" -m pip install -q --disable-pip-version-check pyyaml cfn-lint checkov
fi

templates=("$here"/*.yaml)

echo "cfn-lint: ${#templates[@]} templates"
"$venv_bin/cfn-lint" --format parseable -- "${templates[@]}"

echo "checkov: deploy/aws"
# --skip-download: no guideline or policy download (offline); --quiet: failures only.
report=$("$venv_bin/checkov" --directory "$here" --framework cloudformation --skip-download \
  --quiet --compact --output cli) || {
  printf '%s\n' "$report"
  exit 1
}
printf '%s\n' "$report" | grep -E 'Passed checks' || {
  printf '%s\n' "$report"
  echo "checkov: no result line" >&2
  exit 1
}

echo "test_templates.py"
"$python" "$here/test_templates.py" "$bin"
