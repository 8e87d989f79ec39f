"""CrewAI's telemetry, trace upload and version check, off where Agentspan runs crews unless asked for.

CrewAI sends anonymous usage telemetry (OpenTelemetry to its own collector) and may upload execution
traces; both read their switches from the environment on every use. Importing the adapter sets the
switches off unless the environment already sets them, so a crew run by Agentspan makes no network
attempt of its own: set ``CREWAI_DISABLE_TELEMETRY=false`` or ``CREWAI_TRACING_ENABLED=true`` before
importing it to opt back in. ``OTEL_SDK_DISABLED`` is left alone: it would switch off the
application's own OpenTelemetry too.
"""

from __future__ import annotations

import os

__all__ = ["SWITCHES", "quiet_by_default"]

SWITCHES = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
}


def quiet_by_default() -> None:
    """Set each switch that the environment does not set already."""
    for name, value in SWITCHES.items():
        os.environ.setdefault(name, value)
