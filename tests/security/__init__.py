"""Tests of security across the packages: auth, sessions, hostile input, faults, the serve defaults."""
