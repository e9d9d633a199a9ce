"""Dashboard state (flags, saved views) lives here as the dashboard issue adds it."""
