"""The connectors process (``manage.py connectors_run``): every enabled data source in one asyncio loop.

- **Inputs** (``inputs/``) turn messages into ``Incoming`` readings and hand them to one queue.
- **Writer**: takes up to ``STAMM_CONNECTORS_BATCH_MAX`` readings or what arrived within
  ``STAMM_CONNECTORS_FLUSH_MS``, stores them in one transaction (``readings.readings_store``: the same ingest
  service as HTTP, so the pipeline triggers the same way) and only then acknowledges them to their broker.
  A store that refuses (database down) is retried with backoff while the brokers hold the unacknowledged
  messages: nothing is dropped, nothing is acknowledged unstored.
- **Watcher**: every ``poll`` seconds compares each source's ``config_version`` with the running one and
  restarts, starts or stops inputs: configuration changes apply without a restart.
- **Reporter**: every ``STAMM_CONNECTORS_STATUS_INTERVAL`` seconds writes each source's status (connected,
  last message, messages/s, errors) and its new errors; ``/api/v1/health/`` and the page read them.

All database work runs in one worker thread, in order, so the loop never blocks and SQLite sees one writer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, connections

from apps.common.errors import NotFound
from apps.tsdb.types import VariableMetadata

from .inputs.base import Incoming, SourceInput, SourceStats
from .inputs.mqtt import MqttInput
from .inputs.opcua import OpcUaInput
from .models import DataSource, ErrorKind, SourceKind

logger = logging.getLogger(__name__)
INPUTS: dict[str, type[SourceInput]] = {SourceKind.MQTT: MqttInput, SourceKind.OPCUA: OpcUaInput}
MAX_STORE_BACKOFF = 30.0
#: Readings held in memory while the store is slow or down. MQTT needs no cap (the broker stops sending at our
#: Receive Maximum of unacknowledged messages); OPC UA readings beyond it are dropped and counted as errors.
MAX_BACKLOG = 200_000


class Runner:
    def __init__(
        self,
        *,
        poll: float = 2.0,
        flush_ms: int | None = None,
        batch_max: int | None = None,
        status_interval: float | None = None,
        only: tuple[str, ...] = (),
    ) -> None:
        self.poll = poll
        self.flush = (flush_ms or settings.STAMM_CONNECTORS_FLUSH_MS) / 1000
        self.batch_max = batch_max or settings.STAMM_CONNECTORS_BATCH_MAX
        self.status_interval = status_interval or settings.STAMM_CONNECTORS_STATUS_INTERVAL
        self.only = only
        self.name = f"{socket.gethostname()}:{os.getpid()}"[:255]
        self.inputs: dict[int, SourceInput] = {}
        self.stats: dict[int, SourceStats] = {}
        self.queue: asyncio.Queue[Incoming] = asyncio.Queue()
        self.db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="connectors-db")
        self.series_ok: dict[Any, str | None] = {}
        self.units_seen: set[tuple[str, str, str]] = set()
        self.stored_batches = 0
        self.skipped: dict[int, int] = {}  # sources left to another process (--source), by config version

    async def _db(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        def call() -> Any:
            close_old_connections()
            try:
                return fn(*args, **kwargs)
            except Exception:
                connection.close()  # a broken connection is reopened by the next call
                raise

        return await asyncio.get_running_loop().run_in_executor(self.db, call)

    # -- lifecycle -------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        logger.info("connectors process %s starting", self.name)
        tasks = [
            asyncio.create_task(self._watch(stop), name="watcher"),
            asyncio.create_task(self._write(stop), name="writer"),
            asyncio.create_task(self._report(stop), name="reporter"),
        ]
        await stop.wait()
        for source_input in list(self.inputs.values()):
            source_input.pause()  # no new readings; the writer stores and acknowledges what is queued
        await asyncio.gather(*tasks, return_exceptions=True)
        for source_input in list(self.inputs.values()):
            await source_input.stop()
        await self._report_once()
        # The database thread's connection is closed here, not left to the garbage collector: a runner
        # stopped inside a longer-lived process (the tests run it in a thread) would otherwise hold a
        # session open on the database after it stopped.
        await asyncio.get_running_loop().run_in_executor(self.db, connections.close_all)
        self.db.shutdown(wait=True)
        logger.info("connectors process %s stopped", self.name)

    # -- configuration -------------------------------------------------------------------------------------
    async def _watch(self, stop: asyncio.Event) -> None:
        from .selectors import runner_config

        while not stop.is_set():
            try:
                config = await self._db(runner_config)
                await self._apply(config)
            except Exception:  # noqa: BLE001 - a database outage: keep running, try again
                logger.exception("connectors: cannot read the source configuration")
            try:
                await asyncio.wait_for(stop.wait(), self.poll)
            except TimeoutError:
                pass

    async def _apply(self, config: dict[int, tuple[int, bool]]) -> None:
        from .selectors import data_source_get

        for source_id in list(self.inputs):
            version, enabled = config.get(source_id, (None, False))
            if not enabled or version != self.stats[source_id].config_version:
                await self.inputs.pop(source_id).stop()
                if not enabled:
                    self.stats[source_id].state = "disabled" if version is not None else "deleted"
                    if version is None:
                        self.stats.pop(source_id)
        for source_id, (version, enabled) in config.items():
            if not enabled or source_id in self.inputs or self.skipped.get(source_id) == version:
                continue
            try:
                source: DataSource = await self._db(data_source_get, data_source_id=source_id)
            except NotFound:  # deleted meanwhile
                continue
            if self.only and source.name not in self.only:
                self.skipped[source_id] = version
                continue
            stats = self.stats.get(source_id)
            if stats is None or stats.config_version != source.config_version:
                previous = stats
                stats = SourceStats(source.pk, source.name, source.config_version)
                if previous is not None:  # counters survive a configuration change
                    stats.messages_total, stats.points_total = previous.messages_total, previous.points_total
                    stats.errors_total, stats.last_message_at = previous.errors_total, previous.last_message_at
                self.stats[source_id] = stats
            source_input = INPUTS[source.kind](source, self._accept, stats)
            self.inputs[source_id] = source_input
            try:
                await source_input.start()
            except Exception as exc:  # noqa: BLE001 - a source that cannot start is reported, the rest run
                stats.down(f"cannot start: {exc}")
                stats.error(ErrorKind.CONNECTION, f"cannot start: {type(exc).__name__}: {exc}")
            logger.info(
                "connectors: %s source %s (version %s) started", source.kind, source.name, source.config_version
            )

    # -- storing -----------------------------------------------------------------------------------------
    def _accept(self, item: Incoming) -> None:
        if item.ack is None and self.queue.qsize() >= MAX_BACKLOG:
            stats = self.stats.get(item.source_id)
            if stats is not None:
                stats.error(ErrorKind.STORE, f"{MAX_BACKLOG} readings wait for the store: reading dropped")
            return
        self.queue.put_nowait(item)

    async def _next_batch(self, stop: asyncio.Event) -> list[Incoming]:
        try:
            first = await asyncio.wait_for(self.queue.get(), 0.5)
        except TimeoutError:
            return []
        batch = [first]
        deadline = time.monotonic() + self.flush
        while len(batch) < self.batch_max:
            while not self.queue.empty() and len(batch) < self.batch_max:
                batch.append(self.queue.get_nowait())
            remaining = deadline - time.monotonic()
            if remaining <= 0 or len(batch) >= self.batch_max:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    def _storable(self, batch: list[Incoming]) -> list[Incoming]:
        """Drop readings whose mapped tags the store would refuse (an error of their source, acknowledged)."""
        from .readings import series_problem

        keep = []
        for item in batch:
            if item.key not in self.series_ok:
                if len(self.series_ok) > 200_000:
                    self.series_ok.clear()
                self.series_ok[item.key] = series_problem(item.key)
            problem = self.series_ok[item.key]
            if problem is None:
                keep.append(item)
                continue
            stats = self.stats.get(item.source_id)
            if stats is not None:
                stats.error(ErrorKind.MAPPING, problem, address=str(item.key.tags()))
            if item.ack:
                item.ack()
        return keep

    def _new_units(self, batch: list[Incoming]) -> list[VariableMetadata]:
        units = []
        for item in batch:
            seen = (item.key.project_name, item.key.device_id, item.key.observed_property)
            if item.rule.unit and seen not in self.units_seen:
                self.units_seen.add(seen)
                units.append(VariableMetadata(*seen, unit=item.rule.unit))
        return units

    async def _write(self, stop: asyncio.Event) -> None:
        from .readings import readings_store, units_missing

        while not (stop.is_set() and self.queue.empty()):
            batch = self._storable(await self._next_batch(stop))
            if not batch:
                continue
            units = self._new_units(batch)
            backoff = 0.5
            while True:
                try:
                    if units:
                        units = await self._db(units_missing, candidates=units)
                    stored = await self._db(readings_store, items=batch, units=units)
                    break
                except Exception as exc:  # noqa: BLE001 - kept and retried: the brokers hold the messages
                    logger.warning("connectors: storing %d readings failed: %s", len(batch), exc)
                    for source_id in {i.source_id for i in batch}:
                        if source_id in self.stats:
                            self.stats[source_id].error(ErrorKind.STORE, f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(backoff)
                    backoff = min(MAX_STORE_BACKOFF, backoff * 2)
            for item in batch:
                if item.ack:
                    item.ack()
            for source_id, count in stored.per_source.items():
                if source_id in self.stats:
                    self.stats[source_id].points_total += count
            self.stored_batches += 1

    # -- reporting ---------------------------------------------------------------------------------------
    async def _report_once(self) -> None:
        from .services import source_errors_record, source_status_report

        reports = [stats.report() for stats in self.stats.values()]
        errors = [error for stats in self.stats.values() for error in stats.take_errors()]
        try:
            await self._db(source_status_report, reports=reports, runner=self.name)
            await self._db(source_errors_record, errors=errors)
        except Exception:  # noqa: BLE001 - reported next time
            logger.exception("connectors: cannot write the status report")

    async def _report(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._report_once()
            try:
                await asyncio.wait_for(stop.wait(), self.status_interval)
            except TimeoutError:
                pass
