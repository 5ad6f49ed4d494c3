"""The agent: tools and their registry, safe egress, the loop that calls them, confirmations."""
