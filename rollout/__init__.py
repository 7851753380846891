"""rollout: move one configuration file across a fleet, stage by stage, health-gated."""

__version__ = "0.1.0"
