"""The reports service: the figures the county reports, projected from the platform's events."""
