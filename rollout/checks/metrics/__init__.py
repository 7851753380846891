"""Metrics over usage records, per cohort, with the statistics that compare canary to baseline."""
