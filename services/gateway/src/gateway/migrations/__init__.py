"""Schema migrations of the gateway service (see shouwang_shared.migrations)."""
