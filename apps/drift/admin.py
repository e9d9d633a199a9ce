"""Admin registrations of the drift app."""
