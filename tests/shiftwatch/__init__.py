"""Tests of the wiring in shiftwatch/: the root CLI, its startup time, the migrations, the operator commands."""
