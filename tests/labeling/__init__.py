"""Tests of shiftwatch.labeling."""
