"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path


def test_readme_python_example_runs() -> None:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has a Python example"
    code = blocks[0].replace("num_envs=64", "num_envs=2")  # the same call, smaller
    exec(compile(code, "README.md", "exec"), {})
