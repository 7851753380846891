"""`rollout serve`: a read-only web view of the state folder (page, JSON API, Prometheus metrics).

`snapshot` reads the state folder without the lock and never writes; `series` turns the journal's
gate events into each metric check's points; `exposition` renders /metrics; `app` is the web app.
Only `rollout serve` imports `app` and `exposition` (and with them Starlette and prometheus_client).
"""
