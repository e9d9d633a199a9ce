"""OPC UA input: subscriptions (monitored items with the rules' sampling interval and deadband) on the nodes
the rules map, found by browsing from the Objects folder (or named by node id).

Each data change keeps the server's source timestamp (else the server timestamp, else arrival) and status
code: Good values become raw points, Bad/Uncertain ones quality samples (never values). A lost connection
(keep-alive or ``check_connection`` failing) ends the session and the loop reconnects with backoff
(1, 2, 4 … 30 s); every (re)connect browses again, so the address space may change under it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from ..credentials import CredentialsUnreadable
from ..mapping import GOOD, Reading, quality_of_code
from ..models import ErrorKind
from ..transports import opcua_client
from .base import CompiledRule, Incoming, SourceInput

logger = logging.getLogger(__name__)
#: Browse limits: depth below the Objects folder and nodes visited per connection (bounded work).
MAX_BROWSE_DEPTH = 12
MAX_BROWSE_NODES = 20_000
MAX_BACKOFF_SECONDS = 30.0


class OpcUaInput(SourceInput):
    task: asyncio.Task | None = None

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        self._nodes: dict[Any, tuple[CompiledRule, Any]] = {}
        self.task = asyncio.create_task(self._run(), name=f"opcua:{self.source.name}")

    async def stop(self) -> None:
        self._stopping.set()
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - ending; its errors were reported
                pass
        self.stats.down("stopped")

    async def _run(self) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            try:
                client = opcua_client(source=self.source)
            except CredentialsUnreadable as exc:
                self.stats.refused(str(exc))
                return
            try:
                self.stats.down(f"connecting to {self.source.url}")
                async with client:
                    backoff = 1.0
                    await self._session(client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is reported and retried
                message = f"{type(exc).__name__}: {exc}".strip()
                refused = "Bad" in type(exc).__name__ and any(
                    word in type(exc).__name__ for word in ("Identity", "User", "Access", "Security")
                )
                if refused:
                    self.stats.refused(f"server refused the session: {message}")
                else:
                    self.stats.down(f"{message}; reconnecting in {backoff:.0f} s")
                    self.stats.error(ErrorKind.CONNECTION, message)
            if self._stopping.is_set():
                break
            try:
                await asyncio.wait_for(self._stopping.wait(), backoff)
            except TimeoutError:
                pass
            backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)

    async def _session(self, client: Any) -> None:
        from asyncua import ua

        mapped = await self._resolve(client)
        self._nodes = {node.nodeid: (rule, key) for node, rule, key in mapped}
        self.stats.up(f"connected, {len(mapped)} node(s) monitored")
        if not mapped:
            self.stats.state = "connected, but no node matches the mapping rules"
        by_params: dict[tuple[int, float], list[Any]] = {}
        for node, rule, _ in mapped:
            by_params.setdefault((rule.sampling_interval_ms, rule.deadband), []).append(node)
        period = min((p[0] for p in by_params), default=1000)
        subscription = await client.create_subscription(period, self)
        for (interval, deadband), nodes in by_params.items():
            data_filter = None
            if deadband > 0:
                data_filter = ua.DataChangeFilter()
                data_filter.Trigger = ua.DataChangeTrigger.StatusValue
                data_filter.DeadbandType = 1  # absolute
                data_filter.DeadbandValue = deadband
            # Subscription._subscribe is asyncua's one call that takes both a filter and a sampling interval.
            results = await subscription._subscribe(
                nodes, mfilter=data_filter, queuesize=100, sampling_interval=float(interval)
            )
            for node, result in zip(nodes, results, strict=True):
                if isinstance(result, ua.StatusCode):
                    self.stats.error(ErrorKind.MAPPING, f"cannot monitor {node.nodeid.to_string()}: {result.name}")
        while not self._stopping.is_set():
            await asyncio.sleep(1.0)
            await client.check_connection()

    async def _resolve(self, client: Any) -> list[tuple[Any, CompiledRule, Any]]:
        """Every variable node a rule maps, with its series key (first matching rule wins per node)."""
        from asyncua import ua

        found: dict[Any, tuple[Any, CompiledRule, Any]] = {}
        browse = [rule for rule in self.rules if not rule.pattern.is_node_id]
        for rule in self.rules:
            if rule.pattern.is_node_id:
                node = client.get_node(rule.pattern.text)
                try:
                    found.setdefault(node.nodeid, (node, rule, rule.key({})))
                except ValueError as exc:
                    self.stats.error(ErrorKind.MAPPING, str(exc), address=rule.pattern.text)
        if not browse:
            return list(found.values())
        depth = max(MAX_BROWSE_DEPTH if "#" in r.pattern.segments else len(r.pattern.segments) for r in browse)
        frontier: list[tuple[Any, tuple[str, ...]]] = [(client.nodes.objects, ())]
        visited = 0
        while frontier and visited < MAX_BROWSE_NODES:
            node, path = frontier.pop()
            if len(path) >= depth:
                continue
            for child in await node.get_children_descriptions():
                visited += 1
                name = f"{child.BrowseName.NamespaceIndex}:{child.BrowseName.Name}"
                child_path = (*path, name)
                child_node = client.get_node(child.NodeId)
                if child.NodeClass == ua.NodeClass.Variable and child.NodeId not in found:
                    for rule in browse:
                        captures = rule.pattern.match(child_path, browse_names=True)
                        if captures is not None:
                            try:
                                found[child.NodeId] = (child_node, rule, rule.key(captures))
                            except ValueError as exc:
                                self.stats.error(ErrorKind.MAPPING, str(exc), address="/".join(child_path))
                            break
                if child.NodeClass == ua.NodeClass.Object:
                    frontier.append((child_node, child_path))
        return list(found.values())

    # -- asyncua subscription handler --------------------------------------------------------------------
    def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
        mapped = self._nodes.get(node.nodeid)
        if mapped is None or self.paused:
            return
        rule, key = mapped
        self.stats.message()
        data_value = data.monitored_item.Value
        status = data_value.StatusCode
        code = int(status.value) if status is not None else 0
        moment = data_value.SourceTimestamp or data_value.ServerTimestamp
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        quality = quality_of_code(code)
        number: float | None = None
        if isinstance(value, bool | int | float):
            number = float(value)
        elif value is not None and quality == GOOD:
            self.stats.error(
                ErrorKind.PAYLOAD,
                f"value of type {type(value).__name__} is not a number",
                address=node.nodeid.to_string(),
                excerpt=repr(value)[:200],
            )
            return
        if quality == GOOD and (number is None or number != number or number in (float("inf"), float("-inf"))):
            self.stats.error(
                ErrorKind.PAYLOAD, f"value {value!r} is not a finite number", address=node.nodeid.to_string()
            )
            return
        reading = Reading(
            value=number,
            time=moment if isinstance(moment, datetime) else None,
            quality=quality,
            status_code=code,
            status_name=status.name if status is not None else "",
        )
        self.sink(Incoming(self.source.pk, key, rule, reading, time.time_ns(), None))

    def status_change_notification(self, status: Any) -> None:
        self.stats.down(f"subscription status changed: {status}; reconnecting")
