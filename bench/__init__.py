"""Benchmarks: `make bench` runs every module here that has `async def run(stack)`."""
