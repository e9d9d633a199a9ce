"""Models of the drift app."""
