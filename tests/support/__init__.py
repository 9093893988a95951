"""Helpers shared by the tests and bench/: builders of data, real servers and processes. No fixtures here (those live in tests/conftest.py)."""
