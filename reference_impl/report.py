"""A simulation's results as JSON and as a readable summary (what ``vfmig simulate`` prints).

JSON structure (``SIMULATE_JSON_VERSION`` 1), one object:

``outcome``, ``reason``
    ``completed`` / ``cancelled`` / ``failed`` and the ``MIG_REASON`` name in
    lowercase.  With several migrations: ``completed`` if all completed,
    otherwise the first that did not, with its reason.
``explanation``
    null, or why that migration ended in words where the reason alone misleads
    (the stop-and-copy limit passing is ``destination_failure``).
``lost_pages``, ``downtime_ms``, ``total_time_ms``, ``precopy_rounds``, ``pages_sent``, ``bytes_sent``
    for one migration its figures; for several the sum (``downtime_ms``: the
    longest).
``pause_requested_ms``, ``stopped_ms``, ``resumed_ms``
    of the last migration (like ``rounds``), from its START: the switch-over
    (REQUEST_PAUSE), the vCPUs' stop (STOPPED: stop-and-copy begins) and their
    next instruction (on the destination, or on the source after a cancel);
    null for a point the migration never reached.  The handover point of a
    completed migration is its own ``total_time_ms`` (``reference_impl.timeline``
    draws these phases).
``devices``
    per slot after the last migration: ``slot``, ``function``, ``state``,
    ``reset_on_destination`` (null unless that migration completed),
    ``migrated_flag``, ``driver``.
``rounds``
    per pre-copy round of the last migration: ``round``, ``start_ms``,
    ``end_ms``, ``pages``, ``sent``, ``dirty_at_end`` (``end_ms`` and
    ``dirty_at_end`` null, ``sent`` below ``pages``, for a round cut short).
``migrations``
    (only with ``--migrations`` > 1) one object per migration with every
    field above.
``invariant_violations``
    a list of strings; empty when the run kept the brief's invariants.
``simulated_ms``, ``config``, ``version``
    simulated time of the whole run, the settings used, and this structure's version.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from reference_impl.clock import to_ms
from reference_impl.hypervisor import MigrationOutcome, MigrationRecord, RoundRecord
from reference_impl.scenario import SimulationResult
from reference_impl.units import format_size
from vfmig_proto.states import MigReason

SIMULATE_JSON_VERSION = 1


def _round(value: float) -> float:
    return round(value, 3)


def _since_start(record: MigrationRecord, time_ns: int | None) -> float | None:
    return None if time_ns is None else _round(to_ms(time_ns - record.start_ns))


def migration_json(record: MigrationRecord) -> dict[str, Any]:
    """One migration as a JSON-ready dict."""
    return {
        "number": record.number,
        "source": record.source,
        "destination": record.destination,
        "generation": record.generation,
        "outcome": record.outcome.value if record.outcome else None,
        "reason": record.reason.name.lower(),
        "explanation": record.explanation,
        "lost_pages": record.lost_pages,
        "downtime_ms": _round(to_ms(record.downtime_ns)),
        "total_time_ms": _round(to_ms(record.total_ns)),
        "bound_ms": _round(to_ms(record.bound_ns)),
        "precopy_rounds": record.precopy_rounds,
        "pages_sent": record.pages_sent,
        "bytes_sent": record.bytes_sent,
        "group_resets": record.group_resets,
        "pause_requested_ms": _since_start(record, record.pause_requested_ns),
        "stopped_ms": _since_start(record, record.stopped_ns),
        "resumed_ms": _since_start(record, record.resumed_ns),
        "devices": [
            {
                "slot": device.slot,
                "function": device.function,
                "state": device.state.name if device.state is not None else None,
                "reset_on_destination": device.reset_on_destination,
                "migrated_flag": device.migrated_flag,
                "driver": device.driver,
            }
            for device in record.devices
        ],
        "rounds": [
            {
                "round": item.number,
                "start_ms": _round(to_ms(item.start_ns - record.start_ns)),
                "end_ms": None if item.end_ns is None else _round(to_ms(item.end_ns - record.start_ns)),
                "pages": item.pages,
                "sent": item.sent,
                "dirty_at_end": item.dirty_at_end,
            }
            for item in record.rounds
        ],
        "notes": list(record.notes),
    }


def _first_not_completed(records: list[MigrationRecord]) -> MigrationRecord | None:
    return next((record for record in records if record.outcome is not MigrationOutcome.COMPLETED), None)


def _overall(records: list[MigrationRecord]) -> tuple[str, str]:
    record = _first_not_completed(records)
    if record is None:
        return MigrationOutcome.COMPLETED.value, MigReason.COMPLETED.name.lower()
    return record.outcome.value if record.outcome else "unfinished", record.reason.name.lower()


def _ending(outcome: str, reason: str, explanation: str | None) -> str:
    """``failed (destination_failure: no handover within ...)``: the reason, and the words that explain it."""
    return f"{outcome} ({reason}: {explanation})" if explanation else f"{outcome} ({reason})"


def simulation_json(result: SimulationResult) -> dict[str, Any]:
    """The whole run as the JSON object ``vfmig simulate --json`` prints."""
    records = result.migrations
    per_migration = [migration_json(record) for record in records]
    last = per_migration[-1]
    outcome, reason = _overall(records)
    config = asdict(result.config)
    config["fault"] = result.config.fault.value if result.config.fault else None
    config["migration"]["on_precopy_limit"] = result.config.migration.on_precopy_limit.value
    document: dict[str, Any] = {
        "version": SIMULATE_JSON_VERSION,
        "outcome": outcome,
        "reason": reason,
        "explanation": first.explanation if (first := _first_not_completed(records)) else None,
        "lost_pages": sum(item["lost_pages"] for item in per_migration),
        "downtime_ms": max(item["downtime_ms"] for item in per_migration),
        "total_time_ms": _round(sum(item["total_time_ms"] for item in per_migration)),
        "precopy_rounds": sum(item["precopy_rounds"] for item in per_migration),
        "pages_sent": sum(item["pages_sent"] for item in per_migration),
        "bytes_sent": sum(item["bytes_sent"] for item in per_migration),
        "pause_requested_ms": last["pause_requested_ms"],
        "stopped_ms": last["stopped_ms"],
        "resumed_ms": last["resumed_ms"],
        "devices": last["devices"],
        "rounds": last["rounds"],
        "invariant_violations": [str(violation) for violation in result.violations],
        "simulated_ms": _round(to_ms(result.simulated_ns)),
        "config": config,
    }
    if len(records) > 1:
        document["migrations"] = per_migration
    return document


def migration_summary(record: MigrationRecord) -> list[str]:
    """A few readable lines about one migration."""
    outcome = record.outcome.value if record.outcome else "unfinished"
    lines = [
        f"migration {record.number}: {record.source} -> {record.destination}: "
        f"{_ending(outcome, record.reason.name.lower(), record.explanation)}, generation {record.generation}",
        f"  total {to_ms(record.total_ns):.1f} ms (bound {to_ms(record.bound_ns):.0f} ms), "
        f"downtime {to_ms(record.downtime_ns):.1f} ms, {record.precopy_rounds} pre-copy rounds, "
        f"{record.pages_sent} pages sent ({format_size(record.bytes_sent)}), lost pages: {record.lost_pages}",
    ]
    lines.extend(f"    {_round_summary(record, item)}" for item in record.rounds)
    for device in record.devices:
        state = device.state.name if device.state is not None else "-"
        reset = "" if device.reset_on_destination is None else f", in reset on arrival: {device.reset_on_destination}"
        lines.append(
            f"  slot {device.slot}: {device.function or '(none)'} {state}, driver {device.driver}, "
            f"MIGRATED {int(device.migrated_flag)}{reset}"
        )
    lines.extend(f"  note: {note}" for note in record.notes)
    return lines


def _round_summary(record: MigrationRecord, item: RoundRecord) -> str:
    start = f"{to_ms(item.start_ns - record.start_ns):.1f}"
    if item.end_ns is None:  # cut short by a cancel or the switch-over: say how far it got
        return f"round {item.number}: from {start} ms, not finished: {item.sent} of {item.pages} pages sent"
    return (
        f"round {item.number}: {start}..{to_ms(item.end_ns - record.start_ns):.1f} ms, "
        f"{item.pages} pages, {item.dirty_at_end} dirty at its end"
    )


def simulation_summary(result: SimulationResult) -> str:
    """The readable report of a whole run."""
    lines: list[str] = []
    for record in result.migrations:
        lines.extend(migration_summary(record))
    outcome, reason = _overall(result.migrations)
    first = _first_not_completed(result.migrations)
    ending = _ending(outcome, reason, first.explanation if first is not None else None)
    lines.append(f"overall: {ending}, simulated {to_ms(result.simulated_ns) / 1000:.2f} s")
    if result.violations:
        lines.append(f"INVARIANT VIOLATIONS ({len(result.violations)}):")
        lines.extend(f"  {violation}" for violation in result.violations)
    else:
        lines.append(
            "invariants: no lost write, quiet when stopped, reset on arrival, bad path safe, always ends: kept"
        )
    return "\n".join(lines)
