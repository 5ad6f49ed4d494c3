"""``agentctl loadtest``: open-loop load against chat and stream, with an SLO verdict."""
