"""Exception types raised by :mod:`vfmig_proto`.

Every error names what it is about: the field and byte offset for codec
errors, the device and what is wrong with its dump for lspci text, the
offset and width for config-space writes, the state machine, state and
event for protocol errors, and the file and line for spec errors.
"""

from __future__ import annotations


class VfmigError(Exception):
    """Base class of every error raised by the vfmig packages."""


class DecodeError(VfmigError, ValueError):
    """Bytes that are not a valid migration capability.

    ``field`` is the layout name of the offending field (``"cap_len"``,
    ``"device[3].dev_state.state"``) and ``offset`` the byte offset of that
    field within the capability.
    """

    def __init__(self, field: str, offset: int, problem: str) -> None:
        self.field = field
        self.offset = offset
        self.problem = problem
        super().__init__(f"{field} at byte offset 0x{offset:02x}: {problem}")


class EncodeError(DecodeError):
    """A :class:`~vfmig_proto.codec.Capability` view that :func:`~vfmig_proto.codec.encode_capability` cannot encode.

    The only error ``encode_capability`` raises for a bad view: a value of
    the wrong type (a float, a string, None, a bool in a field that is not a
    flag, a member of another enum), a value that does not fit its field, a
    value its enum does not define, a slot count that disagrees with the
    slot entries, and every check that decoding makes.  ``field`` is the
    view's path to the value (``"cap_next"``, ``"device[2].dev_ctrl.drv_state"``)
    and ``offset`` the byte offset it would have in the capability.  A
    :class:`DecodeError` too, so code that caught that for bad views still does.
    """


class DumpError(VfmigError, ValueError):
    """Text that is not a usable ``lspci -x`` / ``-xxx`` / ``-xxxx`` dump, or a function it does not hold.

    The message speaks of what the user has in hand: devices by the slot
    lspci printed for them (``"00:03.0"``, or ``"device 2"`` for a dump
    without a title line), offsets in config space and the lspci option
    that makes a usable dump.  ``device`` is that name, or None when the
    problem is the text as a whole.
    """

    def __init__(self, problem: str, device: str | None = None) -> None:
        self.device = device
        self.problem = problem
        super().__init__(problem)


class ConfigWriteError(VfmigError, ValueError):
    """A config-space write that no PCI transaction can express.

    Raised for a width other than 1, 2 or 4 bytes, an unaligned access or an
    access that runs past the end of the capability.  Writes that are legal
    transactions but touch read-only or reserved bits are *not* errors: the
    access rules silently drop them, as hardware does.
    """

    def __init__(self, offset: int, width: int, problem: str) -> None:
        self.offset = offset
        self.width = width
        super().__init__(f"{width}-byte write at capability offset 0x{offset:02x}: {problem}")


class CapabilityFitError(VfmigError, ValueError):
    """A migration capability too long for the configuration space at the offset the bridge places it."""


class ProtocolError(VfmigError):
    """An event that the transition table does not allow in the current state.

    ``machine`` names the table (``"device"`` or ``"migration"``).
    """

    def __init__(self, machine: str, state: object, event: object) -> None:
        self.machine = machine
        self.state = state
        self.event = event
        state_name = getattr(state, "name", state)
        event_name = getattr(event, "name", event)
        super().__init__(f"{machine} state machine: event {event_name} is not allowed in state {state_name}")


class SpecFormatError(VfmigError):
    """A requirement block in ``spec/`` that does not follow the required form."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        super().__init__(f"{path}:{line}: {problem}")
