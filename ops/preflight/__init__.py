"""`agentctl preflight`: the production checklist (docs/production-checklist.md), checked."""
