"""Schema migrations of the rewards service (see shouwang_shared.migrations)."""
