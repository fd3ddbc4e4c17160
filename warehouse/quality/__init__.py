"""Data-quality expectation suites and their runner (a small declarative layer over Great Expectations 1.x).

- :mod:`warehouse.quality.suites`: which checks (:class:`Check`, :data:`STAGING_SUITE`,
  :data:`MARTS_SUITE`, :func:`marts_suite` with the marts' grains, :func:`with_reference_flag`).
- :mod:`warehouse.quality.runner`: running them with Great Expectations (:func:`validate`),
  the results (:class:`SuiteResult`, :class:`QualityGateError`), ``quality.validation_results``
  (:func:`persist`) and Data Docs.

This package re-exports the public names of both, so ``from warehouse.quality import ...``
works for every caller.
"""

from __future__ import annotations

from warehouse.quality.runner import (
    ABSENT,
    RESULTS_SCHEMA,
    ExpectationResult,
    QualityGateError,
    SuiteResult,
    persist,
    validate,
)
from warehouse.quality.suites import (
    ENGAGEMENT_DAILY_COUNTS,
    MARTS_SUITE,
    NOW,
    SCORE_LABELS,
    STAGING_SUITE,
    SUITES,
    Check,
    grain_checks,
    marts_suite,
    with_reference_flag,
)

__all__ = [
    "ABSENT",
    "ENGAGEMENT_DAILY_COUNTS",
    "MARTS_SUITE",
    "NOW",
    "RESULTS_SCHEMA",
    "SCORE_LABELS",
    "STAGING_SUITE",
    "SUITES",
    "Check",
    "ExpectationResult",
    "QualityGateError",
    "SuiteResult",
    "grain_checks",
    "marts_suite",
    "persist",
    "validate",
    "with_reference_flag",
]
