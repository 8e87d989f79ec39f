"""Adapters: run agents written with other frameworks durably, call by call.

One subpackage per framework, each behind its own install extra (``pip install -e '.[langgraph]'`` in a checkout).
An adapter hooks the framework's own model-call and tool-call points and sends every call through the
durable context; the framework's own runner still runs the agent. The core never imports a framework.
"""
