"""Runs an example of the README or of a docs page as written, so that their promises are tested code."""

import re
import sys
import types
from pathlib import Path

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def run_readme_example(heading, monkeypatch, tmp_path):
    """Runs the first ```python block after `heading` in the README or a docs page as a module (its classes must
    pickle)."""
    text = "\n".join(page.read_text() for page in PAGES)
    code = re.search(re.escape(heading) + r".*?```python\n(.*?)```", text, re.S).group(1)
    module = types.ModuleType("readme_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.chdir(tmp_path)
    exec(code, module.__dict__)
    return module
