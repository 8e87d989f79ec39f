"""Agentspan: durable execution for AI agents.

Every model call and tool call becomes a durable step recorded by a runtime server; a process that
dies is replaced, completed steps return their recorded results, and execution continues.
"""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
