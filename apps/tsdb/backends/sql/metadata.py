"""The SQL backend's metadata collection: display metadata per (project, device, variable), upserted."""

from __future__ import annotations

from collections.abc import Iterable

from ...types import VariableMetadata
from ...validation import metadata_validate
from .store import SQLStore


class SQLMetadata(SQLStore):
    """``metadata_write`` and ``metadata_read`` of ``SQLBackend`` (the ``tsdb_variablemetadata`` table)."""

    def metadata_write(self, items: Iterable[VariableMetadata]) -> int:
        from ...models import VariableMetadata as MetadataRow

        latest = metadata_validate(items)
        if not latest:
            return 0
        MetadataRow.objects.using(self.alias).bulk_create(
            [
                MetadataRow(
                    project_name=m.project_name,
                    device_id=m.device_id,
                    observed_property=m.observed_property,
                    unit=m.unit or "",
                    display_name=m.display_name or "",
                    decimals=m.decimals,
                )
                for m in latest
            ],
            update_conflicts=True,
            unique_fields=["project_name", "device_id", "observed_property"],
            update_fields=["unit", "display_name", "decimals"],
            batch_size=500,
        )
        return len(latest)

    def metadata_read(self, *, project_name: str, device_id: str | None = None) -> list[VariableMetadata]:
        from ...models import VariableMetadata as MetadataRow

        rows = MetadataRow.objects.using(self.alias).filter(project_name=project_name)
        if device_id is not None:
            rows = rows.filter(device_id=device_id)
        return [
            VariableMetadata(r.project_name, r.device_id, r.observed_property, r.unit, r.display_name, r.decimals)
            for r in rows.order_by("device_id", "observed_property")
        ]
