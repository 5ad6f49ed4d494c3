"""Canary releases of Cloud Run revisions: traffic steps, metric gates, rollback, shared state."""
