#!/usr/bin/env bash
# Run the vfmig conformance suite on this repository's implementation, for any CI system.
#
# Run it from the root of your repository.  Settings come from the environment:
#   VFMIG_SOURCE   what pip installs vfmig from (required): a path to a vfmig checkout,
#                  or a VCS requirement such as "vfmig @ git+https://git.example.com/vfmig.git@v0.1.0"
#   VFMIG_IMPL     MODULE:FACTORY of your implementation (required)
#   VFMIG_TARGET   device, bridge or hypervisor (default: device)
#   VFMIG_PROFILE  quick, default or thorough (default: default)
#   VFMIG_SEED     the run's seed (default: a new random seed every run; the reports record it)
#   VFMIG_REPORTS  where the reports go (default: conformance-reports)
# Extra arguments are passed to `vfmig conformance` (e.g. --requirement VFM-DIRTY-004).
#
# Exit status: that of `vfmig conformance`: 0 conformant, 1 not conformant, 2 bad arguments, an
# internal error or an incomplete run.  The reports are written whenever the run itself finished.
set -euo pipefail

: "${VFMIG_SOURCE:?set VFMIG_SOURCE to a path to vfmig or a VCS requirement}"
: "${VFMIG_IMPL:?set VFMIG_IMPL to the MODULE:FACTORY of your implementation}"
target=${VFMIG_TARGET:-device}
profile=${VFMIG_PROFILE:-default}
reports=${VFMIG_REPORTS:-conformance-reports}
python=${PYTHON:-python3}

# A private environment: the CI machine's Python stays as it was.
"$python" -m venv .vfmig-venv
# shellcheck disable=SC1091
. .vfmig-venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
python -m pip install --quiet "$VFMIG_SOURCE"
# The thorough profile runs shards in parallel under pytest-xdist.
if [ "$profile" = thorough ]; then python -m pip install --quiet pytest pytest-xdist; fi
# Your own package, if the repository is one; otherwise MODULE is found from the current directory.
if [ -f pyproject.toml ] || [ -f setup.py ]; then python -m pip install --quiet .; fi

mkdir -p "$reports"
seed=()
if [ -n "${VFMIG_SEED:-}" ]; then seed=(--seed "$VFMIG_SEED"); fi
status=0
vfmig conformance --target "$target" --impl "$VFMIG_IMPL" --profile "$profile" "${seed[@]}" \
  --json "$reports/report.json" --junit "$reports/junit.xml" --markdown "$reports/report.md" \
  --no-progress "$@" || status=$?
echo "vfmig conformance exited with $status; reports in $reports/"
exit "$status"
