"""What several apps share: base model, errors, the DRF exception handler, permissions, health checks."""
