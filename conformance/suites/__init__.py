"""One Hypothesis state machine per conformance target.

Each is a :class:`conformance.checks.ConformanceMachine`; the runner binds it
to the implementation under test.
"""
