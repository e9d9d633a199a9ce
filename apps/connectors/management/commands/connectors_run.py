"""``manage.py connectors_run``: the connectors process (one per site; see ``apps/connectors/runner.py``)."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Read every enabled MQTT / OPC UA data source into the time-series store until stopped (Ctrl-C)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--poll", type=float, default=2.0, help="Seconds between configuration checks.")
        parser.add_argument("--source", action="append", default=[], help="Only this source (repeatable).")

    def handle(self, *args: Any, **options: Any) -> None:
        from apps.connectors.runner import Runner

        if options["poll"] <= 0:
            from django.core.management.base import CommandError

            raise CommandError("--poll must be a positive number of seconds")
        runner = Runner(poll=options["poll"], only=tuple(options["source"]))

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await runner.run(stop)

        self.stdout.write(f"connectors process {runner.name}: reading every enabled data source (Ctrl-C stops)")
        asyncio.run(main())
        self.stdout.write("connectors process stopped")
