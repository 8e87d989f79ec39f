"""The runtime's HTTP API: a FastAPI app over a :class:`~agentspan.runtime.Service`, and its runner.

Needs the ``server`` extra (in a checkout of the repository: ``pip install -e '.[server]'``).
"""

try:
    import fastapi  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    from ..._install import install_hint

    raise ImportError(f"the Agentspan server needs FastAPI and uvicorn; {install_hint('server')}") from exc

from ._app import create_app
from ._run import run_server

__all__ = ["create_app", "run_server"]
