"""The LangGraph coordinator: classify, then answer or escalate to a human (a conditional edge)."""

from __future__ import annotations

import os
from typing import Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph

from examples.chat_coordinators.coordinators import keyword_intent
from examples.chat_coordinators.fake_llm import FakeLLM

ESCALATE = frozenset({"human_agent", "complaint"})


class ChatState(TypedDict, total=False):
    message: str
    intent: str
    result: dict[str, Any]


def build_graph(seed: int | None = None) -> Any:
    """A compiled graph; the turnout-langgraph plugin wraps it as the `langgraph` engine."""
    llm = FakeLLM.from_env(
        "langgraph", median_ms=70, error_rate=0.03, seed=seed if seed is not None else _env_seed()
    )

    def classify(state: ChatState) -> ChatState:
        return {"intent": keyword_intent(state["message"])}

    def route(state: ChatState) -> Literal["escalate", "answer"]:
        return "escalate" if state["intent"] in ESCALATE else "answer"

    def escalate(state: ChatState) -> ChatState:
        reply = "I'm handing this to a human colleague; they will reply here shortly."
        return {"result": {"reply": reply, "intent": state["intent"], "escalated": True}}

    async def answer(state: ChatState) -> ChatState:
        reply = await llm.generate(f"intent={state['intent']}\n{state['message']}")
        return {"result": {"reply": reply, "intent": state["intent"], "escalated": False}}

    graph = StateGraph(ChatState)
    graph.add_node("classify", classify)
    graph.add_node("escalate", escalate)
    graph.add_node("answer", answer)
    graph.add_edge(START, "classify")
    graph.add_conditional_edges("classify", route, {"escalate": "escalate", "answer": "answer"})
    graph.add_edge("escalate", END)
    graph.add_edge("answer", END)
    return graph.compile()


def _env_seed() -> int:
    return int(os.environ.get("CHAT_DEMO_SEED", "0"))
