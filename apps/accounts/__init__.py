"""Users and roles: capability permissions, role groups, login portal, demo users, API tokens."""
