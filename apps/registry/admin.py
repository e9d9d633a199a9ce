"""Admin registrations of the registry app."""
