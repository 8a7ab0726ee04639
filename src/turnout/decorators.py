"""`@experiment(flag)`: decide for the current request and inject the chosen engine."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from turnout.asgi import STATE_KEY, ContextReader
from turnout.context import RoutingContext, _current, current_context
from turnout.decision import Decision
from turnout.errors import TurnoutError

if TYPE_CHECKING:
    from turnout.router import Turnout

TextSource = str | Callable[[Mapping[str, Any]], str | None]
_REQUEST_PARAM = "turnout_request__"


class BoundEngine:
    """The engine a decision chose, ready to call: `await engine(...)` runs it with fallback."""

    __slots__ = ("context", "decision", "turnout")

    def __init__(self, turnout: Turnout, context: RoutingContext, decision: Decision) -> None:
        self.turnout = turnout
        self.context = context
        self.decision = decision

    @property
    def name(self) -> str | None:
        """The engine's name (the variant, for engine flags)."""
        return self.decision.engine

    @property
    def variant(self) -> str:
        """The variant the flag served."""
        return self.decision.variant

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return await self.turnout.run_decision(self.decision, self.context, args, kwargs)

    def call_sync(self, *args: Any, **kwargs: Any) -> Any:
        """Run a sync engine from sync code."""
        return self.turnout.run_decision_sync(self.decision, self.context, args, kwargs)

    def __repr__(self) -> str:
        return f"<BoundEngine {self.decision.flag}={self.decision.variant} engine={self.name!r}>"


class SyncBoundEngine(BoundEngine):
    """The engine injected into sync handlers: calling it runs the (sync) engine directly."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.call_sync(*args, **kwargs)


def experiment(
    flag: str,
    *,
    turnout: Turnout | None = None,
    text: TextSource | None = None,
    param: str = "engine",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decide `flag` when the handler is called and pass the chosen engine as `param`.

    Works on Starlette endpoints, FastAPI path operations (the injected parameter is hidden
    from FastAPI and its OpenAPI schema) and plain functions called inside a request or
    with `context=`. `text` names the argument (dotted paths allowed) or gives a function of
    the arguments that yields the message to classify, for intent rules.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func)
        if param not in signature.parameters:
            raise TypeError(
                f"@experiment({flag!r}): {func.__qualname__} has no parameter {param!r} to receive the engine"
            )
        takes_context = "context" in signature.parameters
        request_param = _request_parameter(func, signature)
        public = _public_signature(func, signature, param, request_param)
        needs_bind = (text is not None and not callable(text)) or callable(text)
        is_async = inspect.iscoroutinefunction(func)

        def prepare(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[RoutingContext, Any]:
            request = kwargs.pop(_REQUEST_PARAM, None)
            if request is None and request_param is not None:
                request = kwargs.get(request_param) or _positional(args, signature, request_param)
            if request is None:
                request = next((a for a in args if hasattr(a, "scope") and hasattr(a, "url")), None)
            explicit = None if takes_context else kwargs.pop("context", None)
            owner, context = resolve(turnout, explicit, request)
            if needs_bind and text is not None:
                context.text = _text_of(text, signature, args, kwargs)
            decision = owner.decide(flag, context)
            kind = BoundEngine if is_async else SyncBoundEngine
            kwargs[param] = kind(owner, context, decision)
            return context, request

        if is_async:

            @functools.wraps(func)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                context, _ = prepare(args, kwargs)
                token = _current.set(context) if _current.get() is not context else None
                try:
                    return await func(*args, **kwargs)
                finally:
                    if token is not None:
                        _current.reset(token)
        else:

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                context, _ = prepare(args, kwargs)
                token = _current.set(context) if _current.get() is not context else None
                try:
                    return func(*args, **kwargs)
                finally:
                    if token is not None:
                        _current.reset(token)

        wrapper.__signature__ = public  # type: ignore[attr-defined]
        return wrapper

    return decorate


def resolve(
    turnout: Turnout | None, context: RoutingContext | None, request: Any
) -> tuple[Turnout, RoutingContext]:
    """Find the Turnout and the routing context for a call: explicit, middleware, request, app."""
    scope = getattr(request, "scope", None)
    state = scope.get("state") if isinstance(scope, dict) else None
    context = context or current_context() or (state.get(STATE_KEY) if isinstance(state, dict) else None)
    owner = turnout or (context.turnout if context is not None else None)
    if owner is None and isinstance(state, dict):
        owner = state.get("turnout")
    if owner is None and request is not None:
        owner = getattr(getattr(getattr(request, "app", None), "state", None), "turnout", None)
    if owner is None:
        raise TurnoutError(
            "no Turnout for this call: add TurnoutMiddleware, use lifespan=turnout.lifespan, "
            "or pass turnout= (or use @turnout.experiment)"
        )
    if context is None:
        if isinstance(scope, dict):
            context, _ = ContextReader(owner.config.http).read(scope, owner)
        else:
            context = RoutingContext("", turnout=owner)
    return owner, context


def _request_parameter(func: Callable[..., Any], signature: inspect.Signature) -> str | None:
    hints = _hints(func)
    for name in signature.parameters:
        hint = hints.get(name)
        if isinstance(hint, type) and hint.__name__ in {"Request", "HTTPConnection", "WebSocket"}:
            return name
    return "request" if "request" in signature.parameters else None


def _public_signature(
    func: Callable[..., Any], signature: inspect.Signature, param: str, request_param: str | None
) -> inspect.Signature:
    """The signature frameworks see: without the injected engine, with a Request if needed."""
    hints = _hints(func)
    params = [
        p.replace(annotation=hints.get(name, p.annotation))
        for name, p in signature.parameters.items()
        if name != param
    ]
    if request_param is None:
        try:
            from starlette.requests import Request
        except ImportError:
            pass
        else:
            extra = inspect.Parameter(_REQUEST_PARAM, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
            var_kw = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
            params = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD] + [extra, *var_kw]
    return signature.replace(
        parameters=params, return_annotation=hints.get("return", signature.return_annotation)
    )


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:
        return {}


def _positional(args: tuple[Any, ...], signature: inspect.Signature, name: str) -> Any:
    for index, key in enumerate(signature.parameters):
        if key == name:
            return args[index] if index < len(args) else None
    return None


def _text_of(
    source: TextSource, signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str | None:
    bound = signature.bind_partial(*args, **kwargs).arguments
    if callable(source):
        value = source(bound)
    else:
        head, *rest = source.split(".")
        value = bound.get(head)
        for part in rest:
            value = value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
    return value if isinstance(value, str) else None
