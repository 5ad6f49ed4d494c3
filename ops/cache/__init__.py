"""`agentctl cache`: operator access to cache maintenance, and trace replay for what-if analysis."""
