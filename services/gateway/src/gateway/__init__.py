"""Shouwang gateway service."""
