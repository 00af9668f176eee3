"""Examples that run against the installed packages; not part of the wheel."""
