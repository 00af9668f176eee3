"""The ``vfmig`` command: a thin front door over the packages.

Parses arguments, calls into :mod:`vfmig_proto`, the reference implementation
and the conformance suite, prints, and maps outcomes to exit codes: 0 success
(``conformance``: conformant), 1 a check failed (not conformant), 2 usage or
internal error.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import re
import sys
import tomllib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

import vfmig_proto
import vfmig_proto.dump_report
from conformance.cli_options import (
    CommandError,
    OptionError,
    existing_directory,
    fraction,
    in_range,
    positive,
    read_option,
    writable_file,
)
from conformance.harness import AdapterProblem, Interrupted, Isolation, run_isolated
from conformance.harness.loading import load_checked_implementation
from conformance.live import ConformanceProgress
from conformance.parallel import available_cpus, run_parallel
from conformance.progress import SimulationProgress
from conformance.reports import write_reports
from conformance.runner import PROFILES, RunArguments, UsageError
from conformance.summary import summary_text
from conformance.verdicts import RunReport, RunStatus, Target, Verdict
from reference_impl.clock import SimClock
from reference_impl.convergence import convergence_warning
from reference_impl.driver import dma_pages
from reference_impl.events import EventBus
from reference_impl.hypervisor import MigrationConfig, PrecopyLimitAction
from reference_impl.report import simulation_json, simulation_summary
from reference_impl.scenario import ScenarioFault, Simulation, SimulationConfig, SimulationResult
from reference_impl.snapshots import BRIDGE_TITLE, POINTS, RESET, SnapshotError, bridge_config_at
from reference_impl.timeline import timeline_svg
from reference_impl.units import format_size, parse_duration, parse_rate, parse_size
from vfmig_proto import layout
from vfmig_proto.c_header import c_header
from vfmig_proto.config_space import format_lspci_dump
from vfmig_proto.errors import VfmigError
from vfmig_proto.layout import VFM_MAX_SLOTS
from vfmig_proto.requirements import (
    Requirement,
    checkout_root,
    count_by_role_and_keyword,
    installed_spec,
    load_requirements,
    spec_directory,
)
from vfmig_proto.spec_generation import stale_generated, write_generated
from vfmig_proto.states import Keyword, Role

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
"""128 + SIGINT, what a shell reports for a command stopped by Ctrl-C."""
EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE, what a shell reports for a command whose reader went away."""


def _register_maximum(name: str) -> int:
    """The largest value the capability's header register ``name`` holds (its width, from vfmig_proto)."""
    register = next(register for register in layout.HEADER_REGISTERS if register.name == name)
    return (1 << 8 * register.size) - 1


ACK_TIMEOUT_MS_MAX = _register_maximum("ack_timeout_ms")


class _Parser(argparse.ArgumentParser):
    """argparse, changed in two ways for a command people type by hand.

    A value that starts with '-' and a digit (``--memory -5GiB``, ``--bandwidth -1MiB/s``) is read as the
    option's value, so that the command can refuse it by name; argparse would take it for an unknown option
    and answer "expected one argument".  No option of vfmig starts with '-' and a digit, so nothing is lost.

    An error is one line, ``vfmig simulate: --vfs: invalid int value: 'x'``, rather than the whole usage
    block: the line that matters is the last one, and ``--help`` shows the usage.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message.removeprefix('argument ')}\n")


def _summary(requirements: Sequence[Requirement], spec_dir: Path) -> dict[str, object]:
    counts = count_by_role_and_keyword(requirements)
    default = layout.CapabilityParams()
    return {
        "protocol_version": vfmig_proto.PROTOCOL_VERSION,
        "capability": {
            "header_bytes": layout.VFM_HEADER_SIZE,
            "bytes_per_slot": layout.VFM_SLOT_ENTRY_SIZE,
            "slots": [layout.VFM_MIN_SLOTS, layout.VFM_MAX_SLOTS],
            "default_slots": default.num_slots,
            "default_bytes": default.length,
            "max_bytes": layout.capability_length(layout.VFM_MAX_SLOTS),
        },
        "requirements": {
            "total": len(requirements),
            "by_keyword": {keyword.value: sum(r.keyword is keyword for r in requirements) for keyword in Keyword},
            "by_role": {
                role.value: {keyword.value: counts.get((role, keyword), 0) for keyword in Keyword} for role in Role
            },
        },
        "spec": str(spec_dir),
    }


def _print_summary(summary: dict[str, object]) -> None:
    cap = summary["capability"]
    reqs = summary["requirements"]
    assert isinstance(cap, dict)
    assert isinstance(reqs, dict)
    print(f"vfmig protocol {summary['protocol_version']}")
    print(
        f"capability: {cap['header_bytes']} header bytes + {cap['bytes_per_slot']} per slot "
        f"({cap['slots'][0]}..{cap['slots'][1]} slots); "
        f"{cap['default_bytes']} bytes with {cap['default_slots']} slots, at most {cap['max_bytes']}"
    )
    print(f"requirements: {reqs['total']} in {summary['spec']}")
    keywords = [keyword.value for keyword in Keyword]
    print(f"  {'role':<11}" + "".join(f"{k:>11}" for k in keywords) + f"{'all':>8}")
    for role, row in reqs["by_role"].items():
        print(f"  {role:<11}" + "".join(f"{row[k]:>11}" for k in keywords) + f"{sum(row.values()):>8}")
    print(f"  {'(any role)':<11}" + "".join(f"{reqs['by_keyword'][k]:>11}" for k in keywords) + f"{reqs['total']:>8}")
    print("  (a requirement that binds several roles counts once in each role's row)")


def _spec_to_read(args: argparse.Namespace) -> Path:
    """--spec, or the spec that :func:`spec_directory` finds (the checkout's, else the installed copy)."""
    return existing_directory("--spec", args.spec) if args.spec else spec_directory()


def _cmd_spec_summary(args: argparse.Namespace) -> int:
    spec_dir = _spec_to_read(args)
    summary = _summary(load_requirements(spec_dir), spec_dir)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return EXIT_OK


def _cmd_traceability(args: argparse.Namespace) -> int:
    from conformance import traceability, traceability_pages  # noqa: PLC0415 - reads every suite's source: only when asked

    spec_dir = _spec_to_read(args)
    matrix = traceability.build_matrix(requirements=load_requirements(spec_dir))
    if args.json:
        print(json.dumps({"spec": str(spec_dir), **traceability_pages.to_json(matrix)}, indent=2))
    else:
        print(f"spec: {spec_dir}")
        print(traceability_pages.render_text(matrix))
    return EXIT_CHECK_FAILED if matrix.problems() else EXIT_OK


def _spec_to_generate(args: argparse.Namespace) -> Path:
    """Where spec-generate works: --spec, or the checkout's spec/; never the copy installed with the package."""
    if args.spec:
        spec_dir = existing_directory("--spec", args.spec)
    elif args.check:
        spec_dir = spec_directory()  # only read: checking the installed copy against the installed code is fine
    else:
        checkout = checkout_root()
        if checkout is None:
            raise CommandError(
                f"{Path.cwd()} is not in a vfmig checkout (no pyproject.toml naming vfmig beside a spec/ here or "
                "above), and the installed copy of the spec is not to be written: run it from a checkout, or "
                "name the directory with --spec DIR"
            )
        spec_dir = checkout / "spec"
    if not args.check and spec_dir.resolve() == installed_spec().resolve():
        raise CommandError(f"{spec_dir} is the copy of the spec installed with the package: it is not to be written")
    return spec_dir


def _cmd_spec_generate(args: argparse.Namespace) -> int:
    spec_dir = _spec_to_generate(args)
    if args.check:
        stale = stale_generated(spec_dir)
        for path in stale:
            print(f"out of date: {path} (run `vfmig spec-generate`)", file=sys.stderr)
        return EXIT_CHECK_FAILED if stale else EXIT_OK
    for path in write_generated(spec_dir):
        print(f"wrote {path}")
    return EXIT_OK


def _emit_text(text: str, output: Path | None) -> None:
    """Write a command's text to --output when given, else to standard output."""
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def _cmd_c_header(args: argparse.Namespace) -> int:
    output = writable_file("--output", args.output) if args.output else None
    _emit_text(c_header(), output)
    return EXIT_OK


def _guest_memory(args: argparse.Namespace) -> int:
    """--memory in bytes: whole pages, and room for every function's receive ring and buffers."""
    size = read_option("--memory", args.memory, parse_size)
    page_size = 1 << SimulationConfig.page_shift
    if size % page_size:
        raise OptionError("--memory", f"{args.memory!r} is {size} bytes, not a whole number of {page_size}-byte pages")
    needed = args.vfs * dma_pages(args.buffers, page_size) * page_size
    if size < needed:
        # A QEMU user may write a bare number meaning MiB (-m 4096): say that it was read as bytes.
        bare = " (a bare number is bytes, not QEMU's MiB)" if args.memory.strip().isdigit() else ""
        raise OptionError(
            "--memory",
            f"{args.memory!r} is {size} bytes{bare}, too little for the receive rings and buffers of --vfs {args.vfs} "
            f"functions with --buffers {args.buffers}: at least {format_size(needed)}",
        )
    return size


def _slots(option: str, slots: int | None, vfs: int) -> int | None:
    """--slots: a NUM_SLOTS that holds the --vfs functions (None: the default)."""
    if slots is not None and not vfs <= slots <= VFM_MAX_SLOTS:
        raise OptionError(option, f"{slots} is out of range ({vfs}..{VFM_MAX_SLOTS} to hold --vfs {vfs} functions)")
    return slots


def _migration_config(args: argparse.Namespace) -> MigrationConfig:
    return MigrationConfig(
        bandwidth=positive("--bandwidth", args.bandwidth, parse_rate),
        downtime_limit_ns=positive("--downtime-limit", args.downtime_limit, parse_duration),
        link_latency_ns=read_option("--link-latency", args.link_latency, parse_duration),
        precopy_limit_ns=positive("--precopy-limit", args.precopy_limit, parse_duration),
        max_precopy_rounds=in_range("--max-rounds", args.max_rounds, 0),
        on_precopy_limit=PrecopyLimitAction(args.on_precopy_limit),
    )


def _simulation_config(args: argparse.Namespace) -> SimulationConfig:
    """The configuration the arguments ask for; :class:`OptionError` naming the first option out of range."""
    vfs = in_range("--vfs", args.vfs, 1, VFM_MAX_SLOTS)
    buffers = in_range("--buffers", args.buffers, 1)
    return SimulationConfig(
        memory_bytes=_guest_memory(args),
        vfs=vfs,
        dma_rate=read_option("--dma-rate", args.dma_rate, parse_rate),
        dma_read_rate=read_option("--dma-read-rate", args.dma_read_rate, parse_rate),
        cpu_dirty_rate=read_option("--cpu-dirty-rate", args.cpu_dirty_rate, parse_rate),
        cpu_working_set=fraction("--cpu-working-set", args.cpu_working_set),
        migration=_migration_config(args),
        migrations=in_range("--migrations", args.migrations, 1),
        seed=in_range("--seed", args.seed, 0),
        fault=ScenarioFault(args.fault) if args.fault else None,
        ack_timeout_ms=in_range("--ack-timeout-ms", args.ack_timeout_ms, 1, ACK_TIMEOUT_MS_MAX),
        buffers=buffers,
        num_slots=_slots("--slots", args.slots, vfs),
    )


def simulation_config(arguments: Sequence[str]) -> SimulationConfig:
    """The configuration ``vfmig simulate ARGUMENTS`` runs (OptionError for bad values, SystemExit for bad usage)."""
    return _simulation_config(build_parser().parse_args(["simulate", *arguments]))


def _write_line(stream: TextIO, line: str) -> None:
    stream.write(line + "\n")


def _run_simulation(config: SimulationConfig, trace: Path | None, *, show_progress: bool) -> SimulationResult:
    """Run the simulation, with every event written to ``trace`` as it happens (kept on Ctrl-C too)."""
    bus = EventBus(SimClock())
    with contextlib.ExitStack() as stack:
        if trace is not None:
            stream = stack.enter_context(trace.open("w", encoding="utf-8"))
            bus.subscribe(lambda event: _write_line(stream, json.dumps(event.as_json())))
        progress = stack.enter_context(SimulationProgress(bus, config.migrations, enabled=show_progress))
        try:
            simulation = Simulation(config, bus)
        except MemoryError:
            size = format_size(config.memory_bytes)
            raise OptionError("--memory", f"a guest of {size} does not fit in this machine's memory") from None
        return simulation.run(progress=progress.migration_done)


def _cmd_simulate(args: argparse.Namespace) -> int:
    try:
        config = _simulation_config(args)
    except OptionError:
        raise
    except ValueError as exc:  # a check of SimulationConfig's own that the options' checks missed
        raise CommandError(str(exc)) from None
    # Both outputs are checked before the run, which can take minutes, rather than after it.
    trace = writable_file("--trace", args.trace) if args.trace else None
    timeline = writable_file("--timeline", args.timeline) if args.timeline else None
    warning = convergence_warning(config)
    if warning is not None:
        print(f"vfmig simulate: warning: {warning}", file=sys.stderr)
    show_progress = args.progress if args.progress is not None else sys.stderr.isatty()
    result = _run_simulation(config, trace, show_progress=show_progress)
    document = simulation_json(result)
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(simulation_summary(result))
    if timeline is not None:
        timeline.write_text(timeline_svg(document), encoding="utf-8")
    return EXIT_CHECK_FAILED if result.violations else EXIT_OK


def _cmd_config_dump(args: argparse.Namespace) -> int:
    output = writable_file("--output", args.output) if args.output else None
    try:
        vfs = in_range("--vfs", args.vfs, 1, VFM_MAX_SLOTS)
        slots = _slots("--slots", args.slots, vfs)
        seed = in_range("--seed", args.seed, 0)
        config = bridge_config_at(args.at, vfs=vfs, num_slots=args.slots if slots is None else slots, seed=seed)
    except (SnapshotError, ValueError) as exc:
        print(f"vfmig config-dump: {exc}", file=sys.stderr)
        return EXIT_USAGE
    size = 64 if args.short else len(config)
    _emit_text(format_lspci_dump(config[:size], BRIDGE_TITLE), output)
    return EXIT_OK


def _add_simulate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    simulate = commands.add_parser(
        "simulate",
        help="simulate migrations with the reference implementation and report them",
        description="Simulate live migrations of a guest with VFs behind a migration bridge (simulated clock). "
        "Sizes take KiB/MiB/GiB/TiB or QEMU's K/M/G/T (the same binary units; a bare number is bytes), "
        "rates bytes or bits per second (10Gb/s = bits, 128MiB/s = bytes), "
        "durations ms/s/us. Exit 0 when the run kept every invariant, 1 when it broke one "
        "(lost pages, a noisy paused device, ...), 2 on bad arguments.",
    )
    simulate.add_argument(
        "--memory", default="4GiB", metavar="SIZE", help="guest RAM, whole 4 KiB pages (default 4GiB; 4G as QEMU's -m)"
    )
    simulate.add_argument("--vfs", type=int, default=2, metavar="N", help="functions behind the bridge (default 2)")
    simulate.add_argument("--dma-rate", default="1Gb/s", metavar="RATE", help="receive DMA per function (1Gb/s)")
    simulate.add_argument("--dma-read-rate", default="0", metavar="RATE", help="transmit DMA per function (0)")
    simulate.add_argument("--cpu-dirty-rate", default="64MiB/s", metavar="RATE", help="CPU writes (64MiB/s)")
    simulate.add_argument(
        "--cpu-working-set", type=float, default=1.0, metavar="FRACTION", help="share of RAM the CPU writes hit (1.0)"
    )
    simulate.add_argument("--bandwidth", default="128MiB/s", metavar="RATE", help="migration stream (128MiB/s)")
    simulate.add_argument("--downtime-limit", default="300ms", metavar="TIME", help="switch-over target (300ms)")
    simulate.add_argument("--link-latency", default="0.1ms", metavar="TIME", help="one-way latency (0.1ms)")
    simulate.add_argument("--precopy-limit", default="600s", metavar="TIME", help="longest pre-copy, P (600s)")
    simulate.add_argument("--max-rounds", type=int, default=0, metavar="N", help="pre-copy round limit (0: none)")
    simulate.add_argument(
        "--on-precopy-limit",
        choices=[action.value for action in PrecopyLimitAction],
        default=PrecopyLimitAction.SWITCH_OVER.value,
        help="what to do when P passes before convergence",
    )
    simulate.add_argument("--ack-timeout-ms", type=int, default=500, metavar="MS", help="ACK_TIMEOUT_MS (500)")
    simulate.add_argument("--slots", type=int, metavar="N", help="NUM_SLOTS of the bridge (default max(8, --vfs))")
    simulate.add_argument("--buffers", type=int, default=1024, metavar="N", help="receive buffers per function")
    simulate.add_argument("--migrations", type=int, default=1, metavar="N", help="back-and-forth migrations (1)")
    simulate.add_argument("--seed", type=int, default=0, metavar="N", help="random seed of the workload (0)")
    simulate.add_argument(
        "--fault",
        choices=[fault.value for fault in ScenarioFault],
        metavar="NAME",
        help="inject one failure into the first migration: " + ", ".join(fault.value for fault in ScenarioFault),
    )
    simulate.add_argument("--json", action="store_true", help="print one JSON object")
    simulate.add_argument("--trace", metavar="FILE", help="write every event as a JSON line to FILE")
    simulate.add_argument(
        "--timeline",
        metavar="FILE.svg",
        help="draw each migration's timeline (pre-copy rounds, pause, stop-and-copy, resume) as SVG to FILE",
    )
    simulate.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="live progress on standard error (default: when it is a terminal)",
    )
    simulate.set_defaults(handler=_cmd_simulate)


PARALLEL_PROFILE = "thorough"
"""The profile that runs in parallel on every core (conformance.parallel); the others run in-process."""


def _check(args: argparse.Namespace, progress: ConformanceProgress) -> RunReport:
    target = Target(args.target)
    arguments: RunArguments = {
        "profile": args.profile,
        "seed": args.seed,
        "timeout_s": args.timeout,
        "requirements": args.requirement,
        "database_dir": Path(args.database) if args.database else Path.cwd() / ".hypothesis" / "vfmig",
    }
    if args.profile == PARALLEL_PROFILE:
        return run_parallel(target, args.impl, on_shard=progress.shard_done, **arguments)
    return run_isolated(
        target,
        args.impl,
        on_verdict=progress.verdict,
        on_progress=progress.progress,
        isolation=Isolation(memory_limit=args.memory_limit or None),
        loader=load_checked_implementation,
        **arguments,
    )


def _conformance_argument_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments that argparse cannot see, found before a long run starts."""
    if args.timeout < 0:
        return f"--timeout must not be negative, not {args.timeout:g}"
    for path in (args.json, args.junit, args.markdown):
        if path is not None and not Path(path).resolve().parent.is_dir():
            return f"cannot write a report to {path}: no such directory"
        if path is not None and Path(path).is_dir():
            return f"cannot write a report to {path}: it is a directory"
    if args.database is not None and Path(args.database).exists() and not Path(args.database).is_dir():
        return f"--database {args.database} is a file; it must be a directory (Hypothesis keeps one file an example)"
    return None


def _memory_limit(text: str) -> int:
    """``--memory-limit``: a size (QEMU's K/M/G/T or KiB/MiB/GiB), 0 for none."""
    try:
        value = 0 if text.strip() == "0" else parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 4GiB, or 0 for no limit): {error}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a memory limit must not be negative")
    return value


_EXIT_FOR_STATUS = {
    RunStatus.CONFORMANT: EXIT_OK,
    RunStatus.NOT_CONFORMANT: EXIT_CHECK_FAILED,
    RunStatus.INCOMPLETE: EXIT_USAGE,
}


def _conformance_exit_code(report: RunReport) -> int:
    if report.status is RunStatus.INCOMPLETE:
        print("vfmig conformance: the run could not judge everything, so it is incomplete", file=sys.stderr)
    return _EXIT_FOR_STATUS[report.status]


def _write_conformance_reports(args: argparse.Namespace, report: RunReport, started: datetime) -> bool:
    try:
        write_reports(report, json=args.json, junit=args.junit, markdown=args.markdown, started=started)
    except OSError as exc:
        print(f"vfmig conformance: cannot write a report: {exc}", file=sys.stderr)
        return False
    return True


def _cmd_conformance(args: argparse.Namespace) -> int:
    problem = _conformance_argument_problem(args)
    if problem is not None:
        print(f"vfmig conformance: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if os.getcwd() not in sys.path:  # MODULE:FACTORY may name a module in the current directory
        sys.path.insert(0, os.getcwd())
    started = datetime.now(UTC)
    outcome = _run_conformance(args, started)
    if isinstance(outcome, int):
        return outcome
    sys.stdout.write(summary_text(outcome))
    if not _write_conformance_reports(args, outcome, started):
        return EXIT_USAGE
    return _conformance_exit_code(outcome)


def _run_conformance(args: argparse.Namespace, started: datetime) -> RunReport | int:
    """The run's report, or the exit code of a run that ended without one of its own (its reports written)."""
    show_progress = not args.no_progress and sys.stderr.isatty()
    shards = available_cpus() if args.profile == PARALLEL_PROFILE else None
    title = f"vfmig conformance: {args.target}"
    try:
        with ConformanceProgress(title, enabled=show_progress, shards=shards, budget=_budget(args)) as progress:
            return _check(args, progress)
    except AdapterProblem as exc:
        print(f"vfmig conformance: {exc}", file=sys.stderr)
        _write_conformance_reports(args, exc.report, started)
        return EXIT_USAGE
    except Interrupted as exc:
        judged = sum(result.verdict is not Verdict.INCOMPLETE for result in exc.report.results)
        print(
            f"vfmig conformance: interrupted; {judged} of {len(exc.report.results)} requirements judged, "
            "the reports say INCOMPLETE",
            file=sys.stderr,
        )
        _write_conformance_reports(args, exc.report, started)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        print(f"vfmig conformance: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        print(f"vfmig conformance: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _budget(args: argparse.Namespace) -> str:
    profile = PROFILES.get(args.profile)
    if profile is None:
        return ""
    return f"{profile.max_examples} examples x {profile.steps} steps a group"


def _add_conformance(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    conformance = commands.add_parser(
        "conformance",
        help="check an implementation of a target against the spec (Hypothesis state machines)",
        description="Check an implementation of one target (device: a VF model and its driver; bridge; "
        "hypervisor) against every requirement that binds it, and print a verdict per requirement with a "
        "seed and a runnable reproduction of each failure. Exit 0 when it is conformant (warnings allowed), "
        "1 when it is not, 2 on bad arguments or an internal error.",
    )
    conformance.add_argument("--target", required=True, choices=[target.value for target in Target])
    conformance.add_argument(
        "--impl",
        metavar="MODULE:FACTORY",
        help="a zero-argument callable returning the implementation (default: the reference implementation)",
    )
    conformance.add_argument(
        "--profile",
        choices=list(PROFILES),
        default="default",
        help="quick (seconds), default, or thorough (many more examples and steps, in parallel on every core)",
    )
    conformance.add_argument("--seed", type=int, metavar="N", help="seed of the run, to replay one (default: random)")
    conformance.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="longest time one step of the implementation may take (default 5; 0: no limit)",
    )
    conformance.add_argument(
        "--requirement",
        action="append",
        metavar="ID",
        help="check only this requirement (repeatable; default: every requirement of the target)",
    )
    conformance.add_argument("--json", metavar="PATH", help="write the JSON report to PATH")
    conformance.add_argument("--junit", metavar="PATH", help="write the JUnit XML report to PATH")
    conformance.add_argument("--markdown", metavar="PATH", help="write the Markdown report to PATH")
    conformance.add_argument(
        "--database",
        metavar="DIR",
        help="where Hypothesis keeps examples, one subdirectory per implementation (default .hypothesis/vfmig)",
    )
    conformance.add_argument(
        "--memory-limit",
        type=_memory_limit,
        default=4 << 30,
        metavar="SIZE",
        help="address space the implementation's worker process may use (default 4GiB; 0: no limit)",
    )
    conformance.add_argument("--no-progress", action="store_true", help="no live progress on standard error")
    conformance.set_defaults(handler=_cmd_conformance)


def _add_config_dump(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dump = commands.add_parser(
        "config-dump",
        help="print the bridge's config space in lspci -xxx format (decode it with lspci -F FILE -vvv)",
    )
    dump.add_argument(
        "--at", choices=POINTS, default=RESET, help="after reset (default), after boot, or on entering a MIG_STATE"
    )
    dump.add_argument("--vfs", type=int, default=2, metavar="N", help="functions behind the bridge (2)")
    dump.add_argument("--slots", type=int, default=8, metavar="N", help="NUM_SLOTS of the capability (8)")
    dump.add_argument("--seed", type=int, default=0, metavar="N", help="random seed of the simulated workload")
    dump.add_argument("--short", action="store_true", help="only the standard header (64 bytes, like lspci -x)")
    dump.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    dump.set_defaults(handler=_cmd_config_dump)


def _source_tree_version() -> str | None:
    """The version in the pyproject.toml of the source tree this module is imported from, if it is one."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    if not isinstance(project, dict) or project.get("name") != "vfmig":
        return None
    version = project.get("version")
    return str(version) if version is not None else None


def package_version() -> str:
    """vfmig's version: of the source tree that runs (a checkout), else as installed, else "unknown".

    The source tree comes first: run from a checkout with ``python -m``, the code is the checkout's even when
    another copy of vfmig is installed, and the installed metadata would name that copy's version.
    """
    from_source = _source_tree_version()
    if from_source is not None:
        return from_source
    try:
        return importlib.metadata.version("vfmig")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _cmd_decode(args: argparse.Namespace) -> int:
    source = "standard input" if args.file == "-" else args.file
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8", errors="replace")
        reports = vfmig_proto.dump_report.decode_dump(text, slot=args.slot)
    except OSError as exc:
        print(f"vfmig decode: cannot read {source}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except UnicodeDecodeError:
        print(f"vfmig decode: {source} is not text; decode reads what lspci -xxx prints", file=sys.stderr)
        return EXIT_USAGE
    except VfmigError as exc:
        print(f"vfmig decode: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(vfmig_proto.dump_report.report_json(reports), indent=2))
    else:
        sys.stdout.write(vfmig_proto.dump_report.report_text(reports))
    problems = vfmig_proto.dump_report.problems_line(reports)
    if problems is not None:
        print(f"vfmig decode: {problems}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _add_decode(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    decode = commands.add_parser(
        "decode",
        help="find and decode the migration capability in lspci -xxx output (one device or a whole machine)",
        description="Read what lspci -x, -xxx or -xxxx prints (run as root, so that it shows more than the "
        "64-byte header) for one device or every device of a machine, and print for each device whether it "
        "carries the vfmig migration capability and, if it does, every register: offset, field names, values "
        "and the names of states. Exit 0 when every device was decoded, 2 when the input is not a whole dump "
        "or a device's capability list or migration capability is broken (one line on standard error).",
    )
    decode.add_argument("file", metavar="FILE", help="the lspci output, or - for standard input")
    decode.add_argument(
        "--slot", metavar="BB:DD.F", help="decode only the device at this slot, as lspci prints it (e.g. 00:03.0)"
    )
    decode.add_argument("--json", action="store_true", help="print one JSON document")
    decode.set_defaults(handler=_cmd_decode)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``vfmig`` and its subcommands."""
    # Typed as the base class so that the subcommands' helpers take plain argparse types; every subcommand's
    # parser is made by add_subparsers as a _Parser too (argparse uses the parent's class).
    parser: argparse.ArgumentParser = _Parser(
        prog="vfmig",
        description="vfmig: live migration of VMs with directly assigned PCI functions through a migration bridge.",
    )
    parser.add_argument(
        "--version", action="version", version=f"vfmig {package_version()} (protocol {vfmig_proto.PROTOCOL_VERSION})"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    summary = commands.add_parser(
        "spec-summary", help="protocol version, capability size and requirement counts per role and keyword"
    )
    summary.add_argument("--spec", metavar="DIR", help="spec directory to read (default: the packaged spec)")
    summary.add_argument("--json", action="store_true", help="print one JSON object")
    summary.set_defaults(handler=_cmd_spec_summary)

    generate = commands.add_parser("spec-generate", help="write spec/generated/*.rst from vfmig_proto")
    generate.add_argument("--spec", metavar="DIR", help="spec directory (default: the source tree's spec/)")
    generate.add_argument("--check", action="store_true", help="only check that the files are current (exit 1 if not)")
    generate.set_defaults(handler=_cmd_spec_generate)

    trace = commands.add_parser(
        "traceability",
        help="which conformance checks check each requirement; exit 1 if a MUST has no check",
        description="Read the spec and the conformance suites' source and print, per target, how many "
        "requirements have a check, and every problem: a MUST requirement without a check, a check naming an ID "
        "the spec does not define or that does not bind its target. Exit 1 if there is a problem.",
    )
    trace.add_argument("--spec", metavar="DIR", help="spec directory to read (default: the packaged spec)")
    trace.add_argument("--json", action="store_true", help="print the whole matrix as one JSON object")
    trace.set_defaults(handler=_cmd_traceability)

    header = commands.add_parser("c-header", help="print a C header of the capability's registers (pci_regs.h style)")
    header.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    header.set_defaults(handler=_cmd_c_header)

    _add_simulate(commands)
    _add_config_dump(commands)
    _add_decode(commands)
    _add_conformance(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``vfmig``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    command = f"vfmig {args.command}"
    try:
        code = handler(args)
        sys.stdout.flush()  # here, so that a reader that went away is seen below and not at the interpreter's exit
        return code
    except CommandError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
    except VfmigError as exc:
        print(f"vfmig: {exc}", file=sys.stderr)
    except BrokenPipeError:
        # A reader such as `head` stopped reading: nothing to report, and nothing more to write.
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - the interpreter flushes it at exit
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # an output that could be opened but not written (a full disk, say)
        print(f"{command}: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        # Files a command writes are closed by its with-blocks on the way out, so what was written is kept.
        # (conformance handles its own interrupt and returns EXIT_INTERRUPTED itself.)
        print(f"{command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
