"""Tests of shiftwatch.collector."""
