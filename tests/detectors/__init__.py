"""Tests of shiftwatch.detectors."""
