"""Tests of shiftwatch.rollout."""
