"""The end-to-end cases of ``e2e_cases`` on Redis and a throwaway PostgreSQL database."""

from .e2e_cases import (  # noqa: F401 (the cases and their fixtures run here)
    PYTESTMARK,
    frame,
    model,
    stack_fixture,
    test_a_missing_input_records_skipped_runs_with_the_reason,
    test_late_and_out_of_order_data_is_scored,
    test_registry_500_twice_then_200_is_retried_and_stored,
    test_replayed_batch_gets_exactly_one_prediction_per_snapshot,
    test_worker_killed_mid_run_is_redone_without_duplicates,
)

pytestmark = PYTESTMARK
stack = stack_fixture("postgres")
