"""Shouwang dispatch service."""
