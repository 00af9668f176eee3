"""vfmig_proto: the vfmig migration protocol as data and code.

The capability layout (:mod:`vfmig_proto.layout`), the state enums
(:mod:`vfmig_proto.states`), the transition tables
(:mod:`vfmig_proto.transitions`), the codec (:mod:`vfmig_proto.codec`), lspci
dumps and what they say (:mod:`vfmig_proto.config_space`, :mod:`vfmig_proto.dump_report`), the
config-space access rules (:mod:`vfmig_proto.access`) and the requirement index
read from ``spec/`` (:mod:`vfmig_proto.requirements`).  This package imports
no other vfmig package.
"""

from __future__ import annotations

from vfmig_proto.access import WriteMasks, config_write, write_masks
from vfmig_proto.codec import (
    Capability,
    Control,
    DevCtrl,
    DevStatus,
    Features,
    SlotEntry,
    Status,
    decode_capability,
    encode_capability,
    field_value,
    reset_value,
    validate,
    with_field,
)
from vfmig_proto.config_space import (
    DumpedFunction,
    find_migration_capability,
    format_lspci_dump,
    migration_capability,
    parse_lspci_dump,
    parse_lspci_functions,
    select_function,
)
from vfmig_proto.errors import (
    ConfigWriteError,
    DecodeError,
    DumpError,
    EncodeError,
    ProtocolError,
    SpecFormatError,
    VfmigError,
)
from vfmig_proto.layout import (
    VFM_VERSION_MAJOR,
    VFM_VERSION_MINOR,
    Access,
    CapabilityParams,
    capability_length,
)
from vfmig_proto.requirements import Requirement, load_requirements, requirement, requirement_index
from vfmig_proto.states import (
    DevEvent,
    DevState,
    DriverReport,
    Keyword,
    MigEvent,
    MigReason,
    MigState,
    Origin,
    Role,
)
from vfmig_proto.transitions import (
    Action,
    Outcome,
    device_event_allowed,
    device_transition,
    migration_event_allowed,
    migration_transition,
)

PROTOCOL_VERSION = f"{VFM_VERSION_MAJOR}.{VFM_VERSION_MINOR}"
"""The protocol version this package implements."""

__all__ = [
    "PROTOCOL_VERSION",
    "Access",
    "Action",
    "Capability",
    "CapabilityParams",
    "ConfigWriteError",
    "Control",
    "DecodeError",
    "DevCtrl",
    "DevEvent",
    "DevState",
    "DevStatus",
    "DriverReport",
    "DumpError",
    "DumpedFunction",
    "EncodeError",
    "Features",
    "Keyword",
    "MigEvent",
    "MigReason",
    "MigState",
    "Origin",
    "Outcome",
    "ProtocolError",
    "Requirement",
    "Role",
    "SlotEntry",
    "SpecFormatError",
    "Status",
    "VfmigError",
    "WriteMasks",
    "capability_length",
    "config_write",
    "decode_capability",
    "device_event_allowed",
    "device_transition",
    "encode_capability",
    "field_value",
    "find_migration_capability",
    "format_lspci_dump",
    "load_requirements",
    "migration_capability",
    "migration_event_allowed",
    "migration_transition",
    "parse_lspci_dump",
    "parse_lspci_functions",
    "requirement",
    "requirement_index",
    "reset_value",
    "select_function",
    "validate",
    "with_field",
    "write_masks",
]
