"""Tests of shiftwatch.retrain, with the bring-your-own-model contract and its whole loop (test_own_model_*)."""
