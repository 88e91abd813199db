"""Where a token lives beyond one process: a state file, or Redis for a fleet."""
