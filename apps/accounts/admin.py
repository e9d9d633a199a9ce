"""Users, groups and tokens use Django's own admin pages; nothing extra to register here."""
