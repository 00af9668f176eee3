"""The ``vfmig`` command: a thin front door over the packages.

Parses arguments, calls into :mod:`vfmig_proto` (and, as they land, the
reference implementation and the conformance suite), prints, and maps
outcomes to exit codes: 0 success, 1 a check failed, 2 usage or internal error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import vfmig_proto
from vfmig_proto import layout
from vfmig_proto.c_header import c_header
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

    header = commands.add_parser("c-header", help="print a C header of the capability's registers (pci_regs.h style)")
    header.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    header.set_defaults(handler=_cmd_c_header)
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
