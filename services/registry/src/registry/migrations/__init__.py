"""Schema migrations of the registry service (see shouwang_shared.migrations)."""
