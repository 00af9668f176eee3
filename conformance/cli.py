"""The ``vfmig`` command: a thin front door over the packages.

Parses arguments, calls into :mod:`vfmig_proto`, the reference implementation
and the conformance suite, prints, and maps outcomes to exit codes: 0 success
(``conformance``: conformant), 1 a check failed (not conformant), 2 usage or
internal error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import vfmig_proto
import vfmig_proto.dump_report
from conformance.live import ConformanceProgress
from conformance.parallel import available_cpus, run_parallel
from conformance.progress import SimulationProgress
from conformance.reports import write_reports
from conformance.runner import PROFILES, UsageError, run
from conformance.summary import summary_text
from conformance.verdicts import RunReport, Target
from reference_impl.clock import SimClock
from reference_impl.events import EventBus
from reference_impl.hypervisor import MigrationConfig, PrecopyLimitAction
from reference_impl.report import simulation_json, simulation_summary
from reference_impl.scenario import Fault, Simulation, SimulationConfig
from reference_impl.snapshots import BRIDGE_TITLE, POINTS, RESET, SnapshotError, bridge_config_at
from reference_impl.timeline import timeline_svg
from reference_impl.units import parse_duration, parse_rate, parse_size
from vfmig_proto import layout
from vfmig_proto.c_header import c_header
from vfmig_proto.config_space import format_lspci_dump
from vfmig_proto.errors import VfmigError
from vfmig_proto.requirements import Requirement, count_by_role_and_keyword, load_requirements, spec_directory
from vfmig_proto.spec_generation import stale_generated, write_generated
from vfmig_proto.states import Keyword, Role

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2


def _summary(requirements: Sequence[Requirement]) -> dict[str, object]:
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
        "spec": str(spec_directory()),
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


def _cmd_spec_summary(args: argparse.Namespace) -> int:
    requirements = load_requirements(Path(args.spec) if args.spec else None)
    summary = _summary(requirements)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return EXIT_OK


def _cmd_traceability(args: argparse.Namespace) -> int:
    from conformance import traceability  # noqa: PLC0415 - reads every suite's source: only when asked

    requirements = load_requirements(Path(args.spec)) if args.spec else None
    matrix = traceability.build_matrix(requirements=requirements)
    if args.json:
        print(json.dumps(traceability.to_json(matrix), indent=2))
    else:
        print(traceability.render_text(matrix))
    return EXIT_CHECK_FAILED if matrix.problems() else EXIT_OK


def _cmd_spec_generate(args: argparse.Namespace) -> int:
    spec_dir = Path(args.spec) if args.spec else spec_directory()
    if args.check:
        stale = stale_generated(spec_dir)
        for path in stale:
            print(f"out of date: {path} (run `vfmig spec-generate`)", file=sys.stderr)
        return EXIT_CHECK_FAILED if stale else EXIT_OK
    for path in write_generated(spec_dir):
        print(f"wrote {path}")
    return EXIT_OK


def _cmd_c_header(args: argparse.Namespace) -> int:
    text = c_header()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _simulation_config(args: argparse.Namespace) -> SimulationConfig:
    migration = MigrationConfig(
        bandwidth=parse_rate(args.bandwidth),
        downtime_limit_ns=parse_duration(args.downtime_limit),
        link_latency_ns=parse_duration(args.link_latency),
        precopy_limit_ns=parse_duration(args.precopy_limit),
        max_precopy_rounds=args.max_rounds,
        on_precopy_limit=PrecopyLimitAction(args.on_precopy_limit),
    )
    return SimulationConfig(
        memory_bytes=parse_size(args.memory),
        vfs=args.vfs,
        dma_rate=parse_rate(args.dma_rate),
        dma_read_rate=parse_rate(args.dma_read_rate),
        cpu_dirty_rate=parse_rate(args.cpu_dirty_rate),
        cpu_working_set=args.cpu_working_set,
        migration=migration,
        migrations=args.migrations,
        seed=args.seed,
        fault=Fault(args.fault) if args.fault else None,
        ack_timeout_ms=args.ack_timeout_ms,
        buffers=args.buffers,
        num_slots=args.slots,
    )


def simulation_config(arguments: Sequence[str]) -> SimulationConfig:
    """The configuration ``vfmig simulate ARGUMENTS`` runs (ValueError for bad values, SystemExit for bad usage)."""
    return _simulation_config(build_parser().parse_args(["simulate", *arguments]))


def _write_line(stream: TextIO, line: str) -> None:
    stream.write(line + "\n")


def _cmd_simulate(args: argparse.Namespace) -> int:
    try:
        config = _simulation_config(args)
    except ValueError as exc:
        print(f"vfmig simulate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    clock = SimClock()
    bus = EventBus(clock)
    with contextlib.ExitStack() as stack:
        if args.trace:
            trace = stack.enter_context(Path(args.trace).open("w", encoding="utf-8"))
            bus.subscribe(lambda event: _write_line(trace, json.dumps(event.as_json())))
        show_progress = args.progress if args.progress is not None else sys.stderr.isatty()
        progress = stack.enter_context(SimulationProgress(bus, config.migrations, enabled=show_progress))
        simulation = Simulation(config, bus)
        result = simulation.run(progress=progress.migration_done)
    document = simulation_json(result)
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(simulation_summary(result))
    if args.timeline:
        try:
            Path(args.timeline).write_text(timeline_svg(document), encoding="utf-8")
        except OSError as exc:
            print(f"vfmig simulate: cannot write the timeline: {exc}", file=sys.stderr)
            return EXIT_USAGE
    return EXIT_CHECK_FAILED if result.violations else EXIT_OK


def _cmd_config_dump(args: argparse.Namespace) -> int:
    try:
        config = bridge_config_at(args.at, vfs=args.vfs, num_slots=args.slots, seed=args.seed)
    except (SnapshotError, ValueError) as exc:
        print(f"vfmig config-dump: {exc}", file=sys.stderr)
        return EXIT_USAGE
    size = 64 if args.short else len(config)
    text = format_lspci_dump(config[:size], BRIDGE_TITLE)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _add_simulate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    simulate = commands.add_parser(
        "simulate",
        help="simulate migrations with the reference implementation and report them",
        description="Simulate live migrations of a guest with VFs behind a migration bridge (simulated clock). "
        "Sizes take KiB/MiB/GiB, rates bytes or bits per second (10Gb/s = bits, 128MiB/s = bytes), "
        "durations ms/s/us. Exit 0 when the run kept every invariant, 1 when it broke one "
        "(lost pages, a noisy paused device, ...), 2 on bad arguments.",
    )
    simulate.add_argument("--memory", default="4GiB", metavar="SIZE", help="guest RAM (default 4GiB)")
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
        choices=[fault.value for fault in Fault],
        metavar="NAME",
        help="inject one failure into the first migration: " + ", ".join(fault.value for fault in Fault),
    )
    simulate.add_argument("--json", action="store_true", help="print one JSON object")
    simulate.add_argument("--trace", metavar="FILE", help="write every event as a JSON line to FILE")
    simulate.add_argument(
        "--timeline",
        metavar="FILE.svg",
        help="draw the last migration's timeline (pre-copy rounds, pause, stop-and-copy, resume) as SVG to FILE",
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
    database = Path(args.database) if args.database else Path.cwd() / ".hypothesis" / "vfmig"
    if args.profile == PARALLEL_PROFILE:
        return run_parallel(
            target,
            args.impl,
            profile=args.profile,
            seed=args.seed,
            timeout_s=args.timeout,
            requirements=args.requirement,
            database_dir=database,
            on_shard=progress.shard_done,
        )
    return run(
        target,
        args.impl,
        profile=args.profile,
        seed=args.seed,
        timeout_s=args.timeout,
        requirements=args.requirement,
        database_dir=database,
        on_verdict=progress.verdict,
    )


def _conformance_argument_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments that argparse cannot see, found before a long run starts."""
    if args.timeout < 0:
        return f"--timeout must not be negative, not {args.timeout:g}"
    for path in (args.json, args.junit, args.markdown):
        if path is not None and not Path(path).resolve().parent.is_dir():
            return f"cannot write a report to {path}: no such directory"
    return None


def _conformance_exit_code(report: RunReport) -> int:
    if not report.conformant:
        return EXIT_CHECK_FAILED
    if report.suite_errors:
        print("vfmig conformance: the run itself failed, so the verdicts are incomplete", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _cmd_conformance(args: argparse.Namespace) -> int:
    problem = _conformance_argument_problem(args)
    if problem is not None:
        print(f"vfmig conformance: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if os.getcwd() not in sys.path:  # MODULE:FACTORY may name a module in the current directory
        sys.path.insert(0, os.getcwd())
    show_progress = not args.no_progress and sys.stderr.isatty()
    shards = available_cpus() if args.profile == PARALLEL_PROFILE else None
    started = datetime.now(UTC)
    title = f"vfmig conformance: {args.target}"
    try:
        with ConformanceProgress(title, enabled=show_progress, shards=shards) as progress:
            report = _check(args, progress)
    except UsageError as exc:
        print(f"vfmig conformance: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        print(f"vfmig conformance: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(summary_text(report))
    try:
        write_reports(report, json=args.json, junit=args.junit, markdown=args.markdown, started=started)
    except OSError as exc:
        print(f"vfmig conformance: cannot write a report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _conformance_exit_code(report)


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
    parser = argparse.ArgumentParser(
        prog="vfmig",
        description="vfmig: live migration of VMs with directly assigned PCI functions through a migration bridge.",
    )
    parser.add_argument("--version", action="version", version=f"vfmig protocol {vfmig_proto.PROTOCOL_VERSION}")
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
    try:
        return handler(args)
    except VfmigError as exc:
        print(f"vfmig: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
