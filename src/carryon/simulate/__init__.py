"""The interactive part: follow-up moves, plans, the simulated user and the conversation engine."""
