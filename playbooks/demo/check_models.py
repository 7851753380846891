"""Demo health check: the file being checked parses as JSON and every agent names a `provider/model` id."""

import json
import os
import sys

path = os.environ["ROLLOUT_CONFIG_PATH"]
config = json.load(open(path))
bad = [name for name, agent in config.get("agent", {}).items() if "/" not in agent.get("model", "")]
if bad:
    print(f"{os.environ['ROLLOUT_HOST']}: agents without provider/model: {', '.join(bad)}")
    sys.exit(1)
print(f"{os.environ['ROLLOUT_HOST']}: {len(config.get('agent', {}))} agents ok ({os.environ['ROLLOUT_STAGE']})")
