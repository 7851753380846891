"""Build hook: copy the demo (playbooks/demo*.yml, playbooks/demo/*) into the wheel as rollout/data/demo/.

The checkout's playbooks/ stays the one source; the package's copy exists only in what is built, so
`pip install rollout` can run `rollout demo` from any folder (rollout/edges/demo.py finds either).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
DEMO_PLAYBOOKS = ("demo.yml", "demo-bad.yml")


class BuildPyWithDemo(build_py):
    def run(self) -> None:
        super().run()
        source = HERE / "playbooks"
        target = Path(self.build_lib) / "rollout" / "data" / "demo"
        (target / "demo").mkdir(parents=True, exist_ok=True)
        for name in DEMO_PLAYBOOKS:  # the schema sits one folder up in the wheel: rollout/data/
            text = (source / name).read_text(encoding="utf-8")
            text = text.replace("$schema=../rollout/data/playbook.schema.json", "$schema=../playbook.schema.json", 1)
            (target / name).write_text(text, encoding="utf-8")
        for item in sorted((source / "demo").iterdir()):
            if item.is_file():  # not fleet/: that is a demo run's output
                shutil.copyfile(item, target / "demo" / item.name)


setup(cmdclass={"build_py": BuildPyWithDemo})
