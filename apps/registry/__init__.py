"""Model registry: projects, variable dictionaries, soft sensors, versions, aliases, inference."""
