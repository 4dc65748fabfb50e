"""Dagster assets and asset checks: thin declarations over lifecycle/."""
