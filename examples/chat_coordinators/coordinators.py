"""The legacy and workflow coordinators of the chat example (the graph one is in graph.py)."""

from __future__ import annotations

from typing import Any

from examples.chat_coordinators.fake_llm import FakeLLM
from turnout import Turnout, Workflow, current_context
from turnout.comparators import Agreement, normalised

KEYWORDS = {
    "refund": ("refund", "money back", "退款", "退钱"),
    "order_status": ("order", "订单"),
    "tracking": ("track", "where is", "package", "快递", "物流", "到哪"),
    "human_agent": ("human", "agent", "person", "人工", "客服"),
}


def keyword_intent(message: str) -> str:
    """The legacy orchestrator's keyword rules."""
    text = message.casefold()
    for intent, words in KEYWORDS.items():
        if any(word in text for word in words):
            return intent
    return "other"


def make_legacy(llm: FakeLLM) -> Any:
    """The legacy orchestrator: keyword rules, one blocking model call (runs in a worker thread)."""

    def legacy(message: str) -> dict[str, Any]:
        intent = keyword_intent(message)
        if intent == "human_agent":
            return {"reply": "Connecting you to a human agent.", "intent": intent, "escalated": True}
        reply = llm.generate_sync(f"intent={intent}\n{message}")
        resolved, cost = llm.outcome()
        return {"reply": reply, "intent": intent, "escalated": False, "resolved": resolved, "cost_usd": cost}

    return legacy


def make_workflow(turnout: Turnout, llm: FakeLLM) -> Workflow:
    """The WorkflowCoordinator: intent → context → generate, each step traced."""
    workflow = Workflow(name="workflow", output_key="result")

    @workflow.step()
    def intent(state: dict[str, Any]) -> dict[str, Any]:
        context = current_context()
        known = context.intent if context is not None and context.intent is not None else None
        found = known or turnout.classify(state["message"])
        label = found.label if found.label != "unknown" else keyword_intent(state["message"])
        return {"intent": label, "confidence": found.confidence}

    @workflow.step()
    def context(state: dict[str, Any]) -> dict[str, Any]:
        routing = current_context()
        plan = routing.attributes.get("plan", "free") if routing is not None else "free"
        return {"plan": plan, "history": state.get("history", [])}

    @workflow.step()
    async def generate(state: dict[str, Any]) -> dict[str, Any]:
        if state["intent"] == "human_agent":
            return {
                "result": {
                    "reply": "Connecting you to a human agent.",
                    "intent": "human_agent",
                    "escalated": True,
                }
            }
        prompt = f"plan={state['plan']} intent={state['intent']}\n{state['message']}"
        reply = await llm.generate(prompt)
        resolved, cost = llm.outcome()
        result = {"reply": reply, "intent": state["intent"], "escalated": False}
        return {"result": {**result, "resolved": resolved, "cost_usd": cost}}

    return workflow


def same_outcome(served: dict[str, Any], shadow: dict[str, Any]) -> Agreement:
    """Shadow comparator: the same intent and escalation match; the score is how alike the replies read."""
    match = served["intent"] == shadow["intent"] and served["escalated"] == shadow["escalated"]
    return Agreement(match, normalised(_untagged(served["reply"]), _untagged(shadow["reply"])).score)


def _untagged(reply: str) -> str:
    # The fake model marks each reply with its engine ("[legacy] ..."): not a difference in substance.
    return reply.split("] ", 1)[1] if reply.startswith("[") and "] " in reply else reply
