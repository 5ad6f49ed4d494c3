"""`agentctl backup`: operator access to the backup function's jobs."""
