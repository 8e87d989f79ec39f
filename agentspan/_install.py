"""The one install hint every missing-extra error gives.

The name ``agentspan`` on the Python package index belongs to a different project, so the hint points
at this repository (a checkout, or its VCS URL), never at the index.
"""

from __future__ import annotations

__all__ = ["install_hint"]


def install_hint(extra: str) -> str:
    """Say how to install one of Agentspan's extras from its repository.

    Args:
        extra: The extra's name, as in ``pyproject.toml`` (``server``, ``langgraph``...).

    Returns:
        A sentence ready to end an error message.
    """
    return (
        f"install Agentspan from its repository with the {extra!r} extra: in a checkout, "
        f"pip install -e '.[{extra}]' (the package named agentspan on the package index is a different project)"
    )
