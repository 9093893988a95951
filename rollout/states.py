"""The states a rollout moves through, in a module light enough for the CLI to import before a command runs."""

ROLLOUT_STATES = ("candidate", "shadow", "canary", "production", "rejected", "rolled_back")
ACTIVE_STATES = ("candidate", "shadow", "canary")
