"""Mutation testing of the core modules (``make mutate``); see ``python -m mutation --help``."""
