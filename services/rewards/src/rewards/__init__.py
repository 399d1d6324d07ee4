"""Shouwang rewards service."""
