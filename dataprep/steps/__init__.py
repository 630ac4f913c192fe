"""Prepare steps, one per module: each registers itself with `dataprep.registry.register_step`."""
