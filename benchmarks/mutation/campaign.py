"""Mutation campaign over the reference's role modules: how many mutants does the conformance suite kill?

``tox -e mutation`` runs it (``-- --sample N --sample-seed S`` for a fixed, stratified sample).  cosmic-ray
enumerates and applies the mutations (its operators, its occurrence numbering, so ``cosmic-ray apply`` reproduces
any mutant); each mutant runs, in a process of its own, on a copy of the tree (:mod:`mutation.shadow`)
against the conformance targets that bind its role, default profile, a fixed seed, a fresh example database.

Outcomes: *killed* (a verdict broke conformance, or the suite's preflight refused the implementation),
*survived* (CONFORMANT), *incomplete* (the run could not judge everything and found nothing: not counted as killed,
since the suite gave no finding), *timed out* (longer than a multiple of the pristine run: not counted as killed,
since the suite itself did not report it), *incompetent* (the mutated module does not even import: outside the
score, reported apart).  Score = killed / (mutants - equivalent - incompetent); survivors and incomplete runs must
each be in ``triage.toml`` as ``equivalent`` (excluded from the score) or ``gap`` (an open gap of the suite).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from mutation.shadow import MODULES_BY_SOURCE, ROLE_MODULES, SHADOW, RoleModule, build_copy, shadow_path

CHECKOUT = Path(__file__).resolve().parents[2]
TRIAGE_FILE = Path(__file__).with_name("triage.toml")
RESULTS_DIR = Path(__file__).with_name("results")
TIMED_OUT = "timed out"
NOT_KILLED = ("survived", "incomplete", TIMED_OUT)
"""Outcomes that need a triage entry: the suite gave no finding on the mutant."""
MIN_SCORE = 0.95


@dataclass(frozen=True)
class Mutant:
    """One mutation, named the way cosmic-ray names it, plus what it changes (for triage and for humans)."""

    module: str
    """The module's path in the checkout (``reference_impl/driver.py``)."""
    operator: str
    occurrence: int
    line: int
    change: str = ""
    """The mutated line, before and after: ``old -> new`` with surrounding blanks collapsed."""

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.module, self.operator, self.occurrence)


@dataclass
class Outcome:
    mutant: Mutant
    outcome: str
    seconds: float
    cpu_seconds: float = 0.0
    target: str = ""
    requirement: str = ""
    how: str = ""


# ---------------------------------------------------------------- enumeration (cosmic-ray's operators and order)


def _operators() -> list[tuple[str, object]]:
    """Every cosmic-ray operator that takes no arguments, in cosmic-ray's own order (as ``cosmic-ray init``)."""
    import cosmic_ray.plugins  # noqa: PLC0415 - only a campaign needs it

    names = cosmic_ray.plugins.operator_names()
    return [
        (name, cosmic_ray.plugins.get_operator(name)())
        for name in names
        if not cosmic_ray.plugins.get_operator(name).arguments()
    ]


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def enumerate_mutants(root: Path, modules: Iterable[RoleModule] = ROLE_MODULES) -> list[Mutant]:
    """Every mutant of ``modules`` (their shadow copies under ``root``), with cosmic-ray's occurrence numbers;
    what each changes is filled in when it runs (:func:`describe`), since mutating every one costs minutes."""
    from cosmic_ray.ast import ast_nodes, get_ast_from_path  # noqa: PLC0415

    mutants: list[Mutant] = []
    for module in modules:
        tree = get_ast_from_path(shadow_path(root, module))
        nodes = list(ast_nodes(tree))
        for name, operator in _operators():
            positions = [start for node in nodes for start, _end in operator.mutation_positions(node)]  # type: ignore[attr-defined]
            mutants.extend(
                Mutant(module.source, name, occurrence, line) for occurrence, (line, _column) in enumerate(positions)
            )
    return mutants


def describe(mutant: Mutant, source: str, mutated: str) -> Mutant:
    """``mutant`` with its change: the mutated line before and after, blanks collapsed."""
    before, after = source.splitlines(), mutated.splitlines()
    index = mutant.line - 1
    change = f"{_squeeze(before[index])} -> {_squeeze(after[index]) if index < len(after) else ''}"
    return replace(mutant, change=change)


def stratified_sample(mutants: Sequence[Mutant], size: int, seed: int) -> list[Mutant]:
    """``size`` mutants, each module's share proportional to its count (largest remainder, at least one each),
    drawn with ``random.Random(seed)``: the same arguments give the same sample on every machine."""
    by_module: dict[str, list[Mutant]] = {}
    for mutant in mutants:
        by_module.setdefault(mutant.module, []).append(mutant)
    if size >= len(mutants):
        return list(mutants)
    modules = sorted(by_module)
    exact = {module: size * len(by_module[module]) / len(mutants) for module in modules}
    shares = {module: max(1, int(exact[module])) for module in modules}
    by_remainder = sorted(modules, key=lambda module: (-(exact[module] - int(exact[module])), module))
    for module in by_remainder[: max(0, size - sum(shares.values()))]:
        shares[module] += 1
    rng = random.Random(seed)
    chosen: list[Mutant] = []
    for module in modules:
        pool = by_module[module]
        chosen.extend(
            sorted(rng.sample(pool, min(shares[module], len(pool))), key=lambda m: (m.operator, m.occurrence))
        )
    return chosen


# ---------------------------------------------------------------- triage


@dataclass(frozen=True)
class TriageEntry:
    module: str
    operator: str
    occurrence: int
    change: str
    verdict: str
    """``equivalent`` or ``gap``."""
    reason: str
    requirement: str = ""
    """For a gap: the requirement ID the mutant breaks."""

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.module, self.operator, self.occurrence)


class TriageError(ValueError):
    """The triage file is malformed; the message names the entry and the field."""


def parse_triage(text: str, known_requirement: Callable[[str], bool]) -> dict[tuple[str, str, int], TriageEntry]:
    """The ``[[mutant]]`` entries of a triage file, checked: every field present, a gap names a known
    requirement, an equivalent gives a reason, no mutant twice."""
    entries: dict[tuple[str, str, int], TriageEntry] = {}
    for index, raw in enumerate(tomllib.loads(text).get("mutant", [])):
        where = f"mutant #{index + 1} ({raw.get('module')}, {raw.get('operator')}, {raw.get('occurrence')})"
        for name in ("module", "operator", "occurrence", "change", "verdict", "reason"):
            if name not in raw:
                raise TriageError(f"{where}: no {name!r}")
        verdict = raw["verdict"]
        if verdict not in {"equivalent", "gap"}:
            raise TriageError(f"{where}: verdict must be 'equivalent' or 'gap', not {verdict!r}")
        requirement = raw.get("requirement", "")
        if verdict == "gap" and not known_requirement(requirement):
            raise TriageError(f"{where}: a gap names the requirement it breaks; {requirement!r} is not one")
        if not str(raw["reason"]).strip():
            raise TriageError(f"{where}: the reason is empty")
        entry = TriageEntry(
            raw["module"], raw["operator"], int(raw["occurrence"]), raw["change"], verdict, raw["reason"], requirement
        )
        if entry.key in entries:
            raise TriageError(f"{where}: triaged twice")
        entries[entry.key] = entry
    return entries


def spec_requirement(requirement_id: str) -> bool:
    from vfmig_proto import requirement  # noqa: PLC0415

    try:
        requirement(requirement_id)
    except (KeyError, LookupError, ValueError):
        return False
    return True


# ---------------------------------------------------------------- score


@dataclass
class Tally:
    killed: int = 0
    survived: int = 0
    incomplete: int = 0
    timed_out: int = 0
    incompetent: int = 0
    equivalent: int = 0
    gaps: int = 0
    untriaged: int = 0

    @property
    def mutants(self) -> int:
        return self.killed + self.survived + self.incomplete + self.timed_out + self.incompetent

    @property
    def scored(self) -> int:
        """The mutants the score is out of: all but the equivalent and the incompetent ones."""
        return self.mutants - self.equivalent - self.incompetent

    @property
    def score(self) -> float:
        return self.killed / self.scored if self.scored else 1.0


@dataclass
class Summary:
    per_module: dict[str, Tally] = field(default_factory=dict)
    overall: Tally = field(default_factory=Tally)
    gaps: list[tuple[Outcome, TriageEntry]] = field(default_factory=list)
    untriaged: list[Outcome] = field(default_factory=list)
    stale: list[TriageEntry] = field(default_factory=list)
    """Entries whose mutant now changes something else (the module moved on): re-triage them."""


def summarise(outcomes: Sequence[Outcome], triage: dict[tuple[str, str, int], TriageEntry]) -> Summary:
    summary = Summary()
    for result in outcomes:
        tallies = (summary.per_module.setdefault(result.mutant.module, Tally()), summary.overall)
        entry = triage.get(result.mutant.key)
        if entry is not None and entry.change != result.mutant.change:
            summary.stale.append(entry)
            entry = None
        for tally in tallies:
            _count(tally, result.outcome)
            if result.outcome in NOT_KILLED:
                if entry is None:
                    tally.untriaged += 1
                elif entry.verdict == "equivalent":
                    tally.equivalent += 1
                else:
                    tally.gaps += 1
        if result.outcome in NOT_KILLED:
            if entry is None:
                summary.untriaged.append(result)
            elif entry.verdict == "gap":
                summary.gaps.append((result, entry))
    return summary


def _count(tally: Tally, outcome: str) -> None:
    name = outcome.replace(" ", "_")
    setattr(tally, name, getattr(tally, name) + 1)


# ---------------------------------------------------------------- running


def _environment(*paths: Path) -> dict[str, str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(str(path) for path in paths)
    environment["PYTHONHASHSEED"] = "0"
    return environment


def _run_judge(
    base: Path, package_dir: Path, targets: Sequence[str], seed: int, timeout: float
) -> tuple[dict[str, str], float]:
    command = [sys.executable, "-m", "mutation.judge", "--seed", str(seed)]
    command += [arg for target in targets for arg in ("--target", target)]
    start = time.perf_counter()
    try:
        finished = subprocess.run(
            command,
            cwd=package_dir,
            env=_environment(package_dir, base),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"outcome": TIMED_OUT, "how": f"over {timeout:.0f} s"}, time.perf_counter() - start
    seconds = time.perf_counter() - start
    lines = finished.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]), seconds
    except (IndexError, json.JSONDecodeError):
        # The judge died without an answer (the mutant broke the interpreter, e.g. a recursion that overflows C):
        # the run crashed, which the suite's isolated harness reports as a failure of the implementation.
        return {"outcome": "killed", "how": f"judge exited {finished.returncode}: {finished.stderr[-300:]}"}, seconds


def baseline_seconds(base: Path, seed: int) -> dict[str, float]:
    """Each target's time on the pristine shadow; a baseline that is not CONFORMANT stops the campaign."""
    times = {}
    for target in sorted({target for module in ROLE_MODULES for target in module.targets}):
        result, seconds = _run_judge(base, base, [target], seed, timeout=600)
        if result["outcome"] != "survived":
            raise SystemExit(f"the unmutated shadow implementation is not CONFORMANT for {target}: {result}")
        times[target] = seconds
    return times


def run_mutant(base: Path, mutant: Mutant, seed: int, timeout: float) -> Outcome:
    import cosmic_ray.plugins  # noqa: PLC0415
    from cosmic_ray.mutating import mutate_code  # noqa: PLC0415

    module = MODULES_BY_SOURCE[mutant.module]
    with tempfile.TemporaryDirectory(prefix="vfmig-mutant-") as scratch:
        package_dir = Path(scratch)
        shutil.copytree(base / SHADOW, package_dir / SHADOW)
        path = shadow_path(package_dir, module)
        operator = cosmic_ray.plugins.get_operator(mutant.operator)()
        mutated = mutate_code(path.read_text(encoding="utf-8"), operator, mutant.occurrence)
        if mutated is None:
            return Outcome(mutant, "incompetent", 0.0, how="cosmic-ray found no such occurrence")
        mutant = describe(mutant, path.read_text(encoding="utf-8"), mutated)
        path.write_text(mutated, encoding="utf-8")
        result, seconds = _run_judge(base, package_dir, module.targets, seed, timeout)
    return Outcome(
        mutant,
        str(result["outcome"]),
        seconds,
        float(result.get("cpu_seconds", 0.0)),
        str(result.get("target", "")),
        str(result.get("requirement", "")),
        str(result.get("how", "")),
    )


# ---------------------------------------------------------------- reporting


def table(summary: Summary) -> str:
    columns = ("mutants", "killed", "surv.", "incompl.", "t/o", "incomp.", "equiv.", "gaps", "untri.", "score")
    header = f"{'module':32} " + " ".join(f"{name:>8}" for name in columns)
    rows = [header, "-" * len(header)]
    for name, tally in [*sorted(summary.per_module.items()), ("overall", summary.overall)]:
        rows.append(
            f"{name:32} "
            + " ".join(
                f"{count:8}"
                for count in (
                    *(tally.mutants, tally.killed, tally.survived, tally.incomplete, tally.timed_out),
                    *(tally.incompetent, tally.equivalent, tally.gaps, tally.untriaged),
                )
            )
            + f" {tally.score:8.1%}"
        )
    return "\n".join(rows)


def details(summary: Summary) -> str:
    lines = []
    for result, entry in summary.gaps:
        m = result.mutant
        lines.append(f"gap   {entry.requirement:14} {m.module}:{m.line} {m.operator} #{m.occurrence}: {m.change}")
    for result in summary.untriaged:
        m = result.mutant
        lines.append(f"UNTRIAGED ({result.outcome}) {m.module}:{m.line} {m.operator} #{m.occurrence}: {m.change}")
    for entry in summary.stale:
        lines.append(f"STALE triage entry {entry.module} {entry.operator} #{entry.occurrence}: {entry.change}")
    return "\n".join(lines)


def triage_stub(result: Outcome) -> str:
    """A triage entry to fill in, for an untriaged survivor."""
    m = result.mutant
    return (
        f'[[mutant]]\nmodule = "{m.module}"\noperator = "{m.operator}"\noccurrence = {m.occurrence}\n'
        f'line = {m.line}\nchange = {json.dumps(m.change)}\nverdict = ""  # equivalent or gap\nrequirement = ""\n'
        f'reason = ""\n'
    )


def load_outcomes(path: Path) -> list[Outcome]:
    """The outcomes of a results JSON written by :func:`main`."""
    raw = json.loads(path.read_text(encoding="utf-8"))["outcomes"]
    return [Outcome(**{**item, "mutant": Mutant(**item["mutant"])}) for item in raw]


def verdict(summary: Summary, min_score: float) -> int:
    """0 when every survivor is triaged and the score reaches ``min_score``, else 1 (saying why)."""
    if summary.untriaged:
        print(f"{len(summary.untriaged)} mutant(s) not killed and not in the triage file")
    if summary.overall.score < min_score:
        print(f"score {summary.overall.score:.1%} is below {min_score:.0%}")
    return 1 if summary.untriaged or summary.overall.score < min_score else 0


def rescore(path: Path, triage: dict[tuple[str, str, int], TriageEntry], min_score: float) -> int:
    """Apply the triage file to a finished campaign's results, without running anything."""
    summary = summarise(load_outcomes(path), triage)
    print(table(summary))
    print(details(summary))
    return verdict(summary, min_score)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="mutation campaign over the reference's role modules")
    parser.add_argument("--sample", type=int, help="run a stratified sample of N mutants (default: all)")
    parser.add_argument("--sample-seed", type=int, default=1, help="seed of the sample (1)")
    parser.add_argument("--seed", type=int, default=1, help="seed of every conformance run (1)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="mutants run at once (cores)")
    parser.add_argument("--timeout-factor", type=float, default=4.0, help="a mutant's limit: this x its pristine time")
    parser.add_argument("--module", action="append", choices=sorted(MODULES_BY_SOURCE), help="only these modules")
    parser.add_argument("--triage", type=Path, default=TRIAGE_FILE)
    parser.add_argument("--output", type=Path, help="JSON results (default: benchmarks/mutation/results/...)")
    parser.add_argument("--min-score", type=float, default=MIN_SCORE)
    parser.add_argument("--list", action="store_true", help="print the mutants per module and stop")
    parser.add_argument("--rescore", type=Path, metavar="RESULTS", help="judge a results JSON against the triage again")
    args = parser.parse_args(argv)

    triage = parse_triage(args.triage.read_text(encoding="utf-8"), spec_requirement)
    if args.rescore is not None:
        return rescore(args.rescore, triage, args.min_score)
    with tempfile.TemporaryDirectory(prefix="vfmig-mutation-") as scratch:
        base = build_copy(CHECKOUT, Path(scratch) / "tree")
        modules = [MODULES_BY_SOURCE[name] for name in args.module] if args.module else list(ROLE_MODULES)
        everything = enumerate_mutants(base, modules)
        counts = Counter(m.module for m in everything)
        print("mutants per module: " + ", ".join(f"{name} {count}" for name, count in sorted(counts.items())))
        if args.list:
            return 0
        chosen = stratified_sample(everything, args.sample, args.sample_seed) if args.sample else everything
        start = time.perf_counter()
        baseline = baseline_seconds(base, args.seed)
        print("pristine run: " + ", ".join(f"{target} {seconds:.1f} s" for target, seconds in baseline.items()))

        def one(mutant: Mutant) -> Outcome:
            targets = MODULES_BY_SOURCE[mutant.module].targets
            limit = args.timeout_factor * sum(baseline[target] for target in targets) + 10
            result = run_mutant(base, mutant, args.seed, limit)
            print(
                f"  {result.outcome:11} {result.seconds:6.1f} s  {mutant.module}:{mutant.line} {mutant.operator} "
                f"#{mutant.occurrence} {result.requirement}",
                flush=True,
            )
            return result

        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            outcomes = list(pool.map(one, chosen))
        wall = time.perf_counter() - start

    summary = summarise(outcomes, triage)
    median = statistics.median(result.seconds for result in outcomes) if outcomes else 0.0
    median_cpu = statistics.median(result.cpu_seconds for result in outcomes) if outcomes else 0.0
    print(table(summary))
    print(details(summary))
    print(
        f"{len(outcomes)} mutants in {wall:.0f} s wall ({args.workers} workers), median {median:.1f} s a mutant "
        f"(median CPU {median_cpu:.1f} s, total CPU {sum(r.cpu_seconds for r in outcomes):.0f} s)"
    )
    output = args.output or RESULTS_DIR / (
        f"sample-{args.sample}-seed-{args.sample_seed}.json" if args.sample else "full.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(
        json.dumps(
            {
                "command": sys.argv,
                "seed": args.seed,
                "sample": args.sample,
                "sample_seed": args.sample_seed,
                "mutants_per_module": counts,
                "wall_seconds": wall,
                "median_seconds": median,
                "median_cpu_seconds": median_cpu,
                "baseline_seconds": baseline,
                "per_module": {name: {**asdict(t), "score": t.score} for name, t in summary.per_module.items()},
                "overall": {**asdict(summary.overall), "score": summary.overall.score},
                "outcomes": [asdict(result) for result in outcomes],
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"results: {output}")
    if summary.untriaged:
        print(f"{len(summary.untriaged)} untriaged survivor(s): add them to {args.triage}:\n")
        print("\n".join(triage_stub(result) for result in summary.untriaged))
    return verdict(summary, args.min_score)


if __name__ == "__main__":
    sys.exit(main())
