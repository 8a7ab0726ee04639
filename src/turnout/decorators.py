"""`@experiment(flag)`: decide for the current request and inject the chosen engine."""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from turnout.asgi import STATE_KEY, ContextReader
from turnout.context import RoutingContext, current_context, use_context
from turnout.errors import TurnoutError
from turnout.router import Turnout, running_turnout
from turnout.runtime import BoundEngine, SyncBoundEngine

__all__ = ["BoundEngine", "SyncBoundEngine", "experiment", "resolve"]

TextSource = str | Callable[[Mapping[str, Any]], str | None]
_REQUEST_PARAM = "turnout_request__"
_CONNECTION_TYPES = frozenset({"Request", "HTTPConnection", "WebSocket"})


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
        request_param = _request_parameter(func, signature)
        prepare = _Preparer(flag, turnout, text, param, signature, request_param, func)

        if prepare.is_async:

            @functools.wraps(func)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                with use_context(prepare(args, kwargs)):
                    return await func(*args, **kwargs)
        else:

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                with use_context(prepare(args, kwargs)):
                    return func(*args, **kwargs)

        wrapper.__signature__ = _public_signature(func, signature, param, request_param)  # type: ignore[attr-defined]
        return wrapper

    return decorate


class _Preparer:
    """What `@experiment` does before each call: find the context, decide, inject the engine."""

    def __init__(
        self,
        flag: str,
        turnout: Turnout | None,
        text: TextSource | None,
        param: str,
        signature: inspect.Signature,
        request_param: str | None,
        func: Callable[..., Any],
    ) -> None:
        self.flag, self.turnout, self.text, self.param = flag, turnout, text, param
        self.signature = signature
        self.request_param = request_param
        self.takes_context = "context" in signature.parameters
        self.takes_turnout = "turnout" in signature.parameters
        self.is_async = inspect.iscoroutinefunction(func)

    def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RoutingContext:
        request = kwargs.pop(_REQUEST_PARAM, None)
        # A function may take `context`/`turnout` itself: then they are its arguments, and a
        # RoutingContext / Turnout passed that way is still used for the decision.
        explicit = kwargs.get("context") if self.takes_context else kwargs.pop("context", None)
        given = kwargs.get("turnout") if self.takes_turnout else kwargs.pop("turnout", None)
        owner = given if isinstance(given, Turnout) else self.turnout
        context = explicit if isinstance(explicit, RoutingContext) else current_context()
        if context is not None and owner is None:
            owner = running_turnout()  # the middleware's request: nothing to look up
        if context is None or owner is None:
            owner, context = resolve(owner, context, self._request(request, args, kwargs))
        if owner is None:  # for mypy: resolve() raises rather than return no Turnout
            raise TurnoutError("no Turnout for this call")
        if self.text is not None:
            message = _text_of(self.text, self.signature, args, kwargs)
            if message != context.text:
                # The intent is classified lazily from the text: a new text needs a new intent.
                context.text, context.intent, context.intent_view = message, None, None
        kwargs[self.param] = owner.bind(self.flag, context, sync=not self.is_async)
        return context

    def _request(self, request: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if request is None and self.request_param is not None:
            request = kwargs.get(self.request_param) or _positional(args, self.signature, self.request_param)
        if not _is_connection(request):
            request = next((a for a in (*args, *kwargs.values()) if _is_connection(a)), None)
        return request


def resolve(
    turnout: Turnout | None, context: RoutingContext | None, request: Any
) -> tuple[Turnout, RoutingContext]:
    """Find the Turnout and the routing context for a call: explicit, middleware, request, app."""
    scope = getattr(request, "scope", None)
    state = scope.get("state") if isinstance(scope, dict) else None
    context = context or current_context() or (state.get(STATE_KEY) if isinstance(state, dict) else None)
    owner = turnout or running_turnout()
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
            context = RoutingContext("")
    return owner, context


def _request_parameter(func: Callable[..., Any], signature: inspect.Signature) -> str | None:
    """The parameter that receives the Starlette request: typed as one, or an untyped `request`."""
    hints = _hints(func)
    for name in signature.parameters:
        hint = hints.get(name)
        if isinstance(hint, type) and any(c.__name__ in _CONNECTION_TYPES for c in hint.__mro__):
            return name
    # `request: ChatRequest` (a FastAPI body named "request") is not the request.
    untyped = signature.parameters.get("request")
    return "request" if untyped is not None and untyped.annotation is inspect.Parameter.empty else None


def _is_connection(value: Any) -> bool:
    # Look `url` up on the type: on a Starlette Request the attribute is a property that
    # builds a URL object (microseconds per request).
    return isinstance(getattr(value, "scope", None), dict) and hasattr(type(value), "url")


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
    """Resolved annotations; when one cannot be resolved, the others still are."""
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:
        pass
    hints: dict[str, Any] = {}
    namespace = getattr(inspect.unwrap(func), "__globals__", {})
    for name, annotation in getattr(func, "__annotations__", {}).items():
        try:
            # get_type_hints resolves any object's `__annotations__`: resolve this one alone.
            holder = types.SimpleNamespace(__annotations__={name: annotation})
            hints[name] = typing.get_type_hints(holder, globalns=namespace, include_extras=True)[name]
        except Exception:
            continue
    return hints


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
