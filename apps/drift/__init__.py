"""Drift detection: the detector catalogue, drift jobs and results, alerts, lab-sample scoring."""
