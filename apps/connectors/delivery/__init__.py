"""Publishing estimates back to the plant, at least once, with a quality code and a delivery log, in
batches: the cost of a delivery is paid per batch of cursors and per connection, not per run.

How it is kept
--------------
* **Trigger.** The orchestrator sends ``runs_finished`` once per committed transaction with every run it
  finished (a batched pipeline task finishes many at once); the receiver (``signals.py``) keeps the runs
  that stored predictions or failed, never backfill, and calls ``publications_notify`` once for all their
  (deployment, group) pairs, after that commit, so an estimate is only ever published once it is durable.
  ``publications_notify`` (``notify.py``) reads the publications of all those deployments in one query,
  ensures their cursors (one per publication and group) in bulk, flips their ``pending`` flags False→True
  with one conditional UPDATE … RETURNING, and queues ``connectors.deliver`` only for the rows it flipped,
  ``DELIVER_BATCH`` cursor ids per task: a burst of runs leaves at most one queued delivery per publication
  and group.
* **Deliver.** The task (``send.py``) clears ``pending`` for its cursors, loads them with their publications,
  deployments and connections in one query and the deployments' estimators in one call, reads each cursor's
  estimates newer than its position (and not older than the publication's ``max_age_seconds``: history is
  not control), and computes each one's quality (``quality.py``) from facts read for the whole batch (inputs
  reported Bad/Uncertain, open drift alerts, failed runs, units; ``estimates.py``). It then sends each
  connection's messages in one ``publish`` call (connections side by side; a backlog past ``SEND_MAX``
  messages in several), and only then, in one transaction, logs them ``delivered`` and moves those
  cursors. A connection whose send fails costs only its own cursors: their estimates are logged
  ``failed``, their failure counts grow, they do not move, and the task retries just those cursor ids
  with exponential backoff up to ``STAMM_CONNECTORS_PUBLISH_RETRIES`` times; the retry sends the same
  estimates again: **at least once** (a receiver may see an estimate twice, never miss one inside
  ``max_age_seconds``).
* **Overlaps.** A notification arriving while a delivery is sending queues another; both may send the
  newest estimates (at least once allows it) and a cursor only ever moves forward.
* **Backlog.** At most ``MAX_ESTIMATES`` per cursor and task; a cursor that had more is flipped pending
  again in the same transaction that moves it, and the rest follows in the next task.
* **Runtime failure.** When the deployment's latest run on the group failed and there is nothing new to
  send, the last estimate is sent once more as Bad (``BadInternalError``), once per failed run, so the
  control system holds its last good value.
* **Safety net.** Beat's ``connectors.sweep`` re-queues cursors left pending (a lost task, a broker outage)
  or failing, and prunes the logs.
"""

from .estimates import MAX_ESTIMATES, Estimate
from .notify import DELIVER_BATCH, PENDING_GRACE_SECONDS, publication_sweep, publications_notify
from .send import DeliveryOutcome, publications_deliver

__all__ = [
    "DELIVER_BATCH",
    "MAX_ESTIMATES",
    "PENDING_GRACE_SECONDS",
    "DeliveryOutcome",
    "Estimate",
    "publication_sweep",
    "publications_deliver",
    "publications_notify",
]
