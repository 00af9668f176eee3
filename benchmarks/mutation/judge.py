"""Judge one mutant: run the conformance targets that bind its role against the shadow implementation.

Run inside the copy (see :mod:`mutation.shadow`), in a process of its own, so that a mutant that
hangs or crashes takes only this process with it; the campaign enforces the time limit from outside.  Prints one
JSON object (the outcome) as its last line.  Also usable as cosmic-ray's ``test-command`` (exit 0: survived,
1: killed, 2: incompetent), which is how a campaign spreads over cosmic-ray's HTTP workers.

A run stops at its first verdict that breaks conformance: one such verdict already makes the run NOT CONFORMANT,
so the rest of the run could not change whether the mutant is killed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

KILLED, SURVIVED, INCOMPLETE, INCOMPETENT = "killed", "survived", "incomplete", "incompetent"
EXIT_CODES = {SURVIVED: 0, KILLED: 1, INCOMPETENT: 2, INCOMPLETE: 3}


class _FirstBreakError(Exception):
    """Raised from the run's verdict callback to end the run at its first verdict that breaks conformance."""

    def __init__(self, requirement: str, verdict: str) -> None:
        super().__init__(f"{requirement} {verdict}")
        self.requirement = requirement
        self.verdict = verdict


def _stop_at_break(result: Any) -> None:
    if result.verdict.breaks_conformance:
        raise _FirstBreakError(result.requirement.id, result.verdict.value)


def judge_target(target_name: str, implementation: str, seed: int, profile: str) -> dict[str, str]:
    """The outcome of one conformance run (fresh example database) of ``implementation`` for the target."""
    from conformance import runner  # noqa: PLC0415 - imported from the copy, after sys.path is set
    from conformance.verdicts import RunStatus, Target  # noqa: PLC0415

    target = Target(target_name)
    with tempfile.TemporaryDirectory(prefix="vfmig-mutant-db-") as database:
        try:
            report = runner.run(
                target,
                implementation,
                on_verdict=_stop_at_break,
                profile=profile,
                seed=seed,
                database_dir=Path(database),
            )
        except _FirstBreakError as found:
            return {"outcome": KILLED, "target": target_name, "requirement": found.requirement, "how": found.verdict}
        except Exception as error:  # the suite's preflight refused the implementation: a finding of the suite
            return {"outcome": KILLED, "target": target_name, "requirement": "", "how": f"load: {error!r}"[:300]}
    if report.status is RunStatus.NOT_CONFORMANT:
        return {"outcome": KILLED, "target": target_name, "requirement": "", "how": "unattributed failure"}
    if report.status is RunStatus.INCOMPLETE:
        why = report.stopped or "; ".join(report.suite_errors) or "a requirement left incomplete"
        return {"outcome": INCOMPLETE, "target": target_name, "requirement": "", "how": why[:300]}
    return {"outcome": SURVIVED, "target": target_name, "requirement": "", "how": ""}


def judge(targets: list[str], package: str, seed: int, profile: str) -> dict[str, str]:
    """Import the shadow implementation (a failure is an incompetent mutant), then run each target in turn."""
    try:
        importlib.import_module(f"{package}.factories")
    except Exception:
        return {"outcome": INCOMPETENT, "target": "", "requirement": "", "how": traceback.format_exc(limit=2)[-300:]}
    outcome = {"outcome": SURVIVED, "target": "", "requirement": "", "how": ""}
    for target in targets:
        outcome = judge_target(target, f"{package}.factories:{target}", seed, profile)
        if outcome["outcome"] != SURVIVED:
            return outcome
    return outcome


def _changed_module(root: Path) -> list[str]:
    """The targets of the one shadow module that differs from its pristine copy (cosmic-ray mutated it in place)."""
    from mutation.shadow import PRISTINE, ROLE_MODULES, shadow_path  # noqa: PLC0415

    pristine = root / PRISTINE
    return [
        target
        for module in ROLE_MODULES
        if shadow_path(root, module).read_bytes() != (pristine / f"{module.shadow}.py").read_bytes()
        for target in module.targets
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--target",
        action="append",
        help="a target to run (repeatable); default: the targets of "
        "the shadow module that differs from its pristine copy",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", default="default")
    args = parser.parse_args(argv)
    from mutation.shadow import SHADOW  # noqa: PLC0415

    targets = args.target or _changed_module(Path.cwd())
    outcome: dict[str, object] = dict(judge(targets, SHADOW, args.seed, args.profile))
    # CPU time does not depend on what else the machine runs: the figure to compare campaigns by.
    outcome["cpu_seconds"] = time.process_time()
    print(json.dumps(outcome))
    return EXIT_CODES[str(outcome["outcome"])]


if __name__ == "__main__":
    sys.exit(main())
