"""Statistics, health, metrics, self-test, the embedded scheduler (issue 14)."""
