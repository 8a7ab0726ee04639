"""turnout-langgraph: run a LangGraph graph as a turnout engine (entry point `turnout.engines:langgraph`)."""

from turnout_langgraph.engine import LangGraphEngine

__all__ = ["LangGraphEngine"]

__version__ = "0.1.0"
