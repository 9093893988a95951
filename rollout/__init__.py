"""Rollout: the serving gateway, shadow and canary comparisons, approval and rollback."""
