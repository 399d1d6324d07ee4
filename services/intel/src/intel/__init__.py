"""Shouwang intel service."""
