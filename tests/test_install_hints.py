"""Install instructions never point at the package index, where the name ``agentspan`` is another project's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentspan._install import install_hint

ROOT = Path(__file__).resolve().parent.parent
# `pip install agentspan[...]`, `pip install 'agentspan[...]'`, `pip install "agentspan"`: the index's project
# (`agentspan[server] @ git+...`, a direct reference, is not).
FROM_INDEX = re.compile(r"""pip install\s+(-U\s+)?['"]?agentspan(\[[^\]]*\])?(?!\s*@)(['"\s`]|$)""", re.MULTILINE)


def _texts() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "agentspan").rglob("*.py")), *sorted((ROOT / "examples").rglob("*.py"))]


@pytest.mark.parametrize("path", _texts(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_install_instruction_points_at_the_index(path: Path) -> None:
    text = path.read_text()
    offending = [m.group(0) for m in FROM_INDEX.finditer(text)]
    assert not offending, f"{path.name} tells users to install the index's agentspan: {offending}"


def test_readme_says_which_python_and_installs_from_the_repository() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "Python 3.11 or newer" in readme
    assert "pip install -e '.[server]'" in readme
    assert "different project" in readme


def test_missing_extra_hint_installs_from_a_checkout() -> None:
    hint = install_hint("langgraph")
    assert "pip install -e '.[langgraph]'" in hint
    assert not FROM_INDEX.search(hint)
