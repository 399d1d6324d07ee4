"""Shouwang registry service."""
