"""Shared test configuration: Hypothesis profiles for a noisy 2-core machine."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Timing varies a lot on shared CI machines: no per-example deadline anywhere.
settings.register_profile("default", deadline=None)
settings.register_profile("thorough", deadline=None, max_examples=2_000, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
