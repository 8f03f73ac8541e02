"""The demo app: a few workflows that show what Waymark does."""
