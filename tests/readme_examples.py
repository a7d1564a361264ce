"""Runs a README example as written, so that the README's promises are tested code."""

import re
import sys
import types
from pathlib import Path


def run_readme_example(heading, monkeypatch, tmp_path):
    """Runs the first ```python block after `heading` in the README as a module (its classes must pickle)."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    code = re.search(re.escape(heading) + r".*?```python\n(.*?)```", readme, re.S).group(1)
    module = types.ModuleType("readme_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.chdir(tmp_path)
    exec(code, module.__dict__)
    return module
