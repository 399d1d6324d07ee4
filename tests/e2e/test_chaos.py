"""Short chaos run inside `make test`: every kind of fault once under a tip storm; nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio

import pytest

from shouwang_dev.testing import start_test_stack, stop_test_stack

from bench.chaos import run_chaos


@pytest.mark.chaos
async def test_short_chaos_run_loses_and_doubles_nothing():
    stack = await asyncio.to_thread(start_test_stack, private=True)  # its own PostgreSQL and Kafka, to break
    try:
        result = await run_chaos(stack, faults=7, volunteers=4, rate_per_s=6)
    finally:
        await asyncio.to_thread(stop_test_stack, stack)
    print(result)  # the measured counts, in the CI log
    assert result["faults_injected"] == 7
    assert result["tips_acknowledged"] > 0
    assert result["tips_lost"] == 0, result
    assert result["tip_rewards_missing"] == 0, result
    assert result["duplicate_rewards"] == 0, result
    assert result["cases_forwarded"] > 0 and result["case_rewards_paid"] > 0, result  # the case path was really exercised
    assert result["duplicate_case_rewards"] == 0, result
    assert result["case_rewards_missing"] == 0, result
    assert result["duplicate_assignments"] == 0, result
    assert result["ledger_mismatches"] == 0, result
    assert result["operation_offers"] == 4, result
    assert result["recovery_seconds_max"] < 60, result
