"""The abstract base model every domain model inherits."""
from django.db import models


class TimeStampedModel(models.Model):
    """Creation and update times on every row, so audits never need a second table."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
