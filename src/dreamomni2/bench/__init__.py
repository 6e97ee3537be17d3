"""Benchmarks: the held-out mini suite, a batched runner that scores outputs, paper-style tables.

``suites`` builds the cases (:func:`mini_suite`, seed 1,000,003; training uses seeds below 1,000,000), ``runner``
runs a pipeline over them and scores each output with the mini analyzer (:func:`run_mini_bench`), ``report`` formats
the tables and writes results, ``cli`` holds the ``dreamomni2 bench`` command. Torch loads only when a run starts.
"""

from __future__ import annotations

from dreamomni2.bench.report import format_attribute_table, format_kind_table, format_table, write_results
from dreamomni2.bench.runner import BenchResult, CaseRecord, run_mini_bench
from dreamomni2.bench.suites import (
    HELD_OUT_SEED,
    TRAIN_SEED_LIMIT,
    ExternalCase,
    assert_disjoint,
    case_key,
    load_cases_jsonl,
    mini_suite,
    training_keys,
)

__all__ = [
    "HELD_OUT_SEED",
    "TRAIN_SEED_LIMIT",
    "BenchResult",
    "CaseRecord",
    "ExternalCase",
    "assert_disjoint",
    "case_key",
    "format_attribute_table",
    "format_kind_table",
    "format_table",
    "load_cases_jsonl",
    "mini_suite",
    "run_mini_bench",
    "training_keys",
    "write_results",
]
