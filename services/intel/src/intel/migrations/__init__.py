"""Schema migrations of the intel service (see shouwang_shared.migrations)."""
