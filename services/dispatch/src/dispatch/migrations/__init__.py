"""Schema migrations of the dispatch service (see shouwang_shared.migrations)."""
