"""null."""
