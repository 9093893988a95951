"""Tests of shiftwatch.console: pages, charts and a real browser."""
