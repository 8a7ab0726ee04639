"""`TurnoutProvider`: an OpenFeature provider that evaluates flags with a `Turnout` in process."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata
from openfeature.track import TrackingEventDetails

from turnout import Turnout, TurnoutConfig, current_context
from turnout.evaluation import evaluate

T = TypeVar("T")
ObjectValue = Sequence[FlagValueType] | Mapping[str, FlagValueType]


class TurnoutProvider(AbstractProvider):
    """Resolves OpenFeature flag evaluations with `turnout.decide`: same variants, same exposures.

    Typed values come from `kind = "value"` flags (`values = { on = true, off = false }`), an
    engine flag resolves to its engine's name. A reload of the turnout configuration emits
    `PROVIDER_CONFIGURATION_CHANGED` naming the flags that changed.
    """

    def __init__(self, turnout: Turnout) -> None:
        super().__init__()
        self.turnout = turnout
        self._config = turnout.config
        self._unsubscribe: Callable[[], None] | None = None

    def get_metadata(self) -> Metadata:
        return Metadata(name="turnout")

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        self._config = self.turnout.config
        if self._unsubscribe is None:
            self._unsubscribe = self.turnout.on_reload(self._reloaded)

    def shutdown(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _reloaded(self, config: TurnoutConfig) -> None:
        previous, self._config = self._config, config
        changed = changed_flags(previous, config)
        if changed:
            self.emit_provider_configuration_changed(
                ProviderEventDetails(flags_changed=changed, message="turnout configuration reloaded")
            )

    # -- tracking ------------------------------------------------------------------------

    def track(
        self,
        tracking_event_name: str,
        evaluation_context: EvaluationContext | None = None,
        tracking_event_details: TrackingEventDetails | None = None,
    ) -> None:
        """Record an OpenFeature tracking event as a turnout event (for experiment metrics)."""
        properties: dict[str, Any] = {}
        if tracking_event_details is not None:
            properties.update(tracking_event_details.attributes)
            if tracking_event_details.value is not None:
                properties["value"] = tracking_event_details.value
        key = evaluation_context.targeting_key if evaluation_context is not None else None
        self.turnout.track(tracking_event_name, distinct_id=key, properties=properties)

    # -- resolution ----------------------------------------------------------------------

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context, _boolean)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context, _string)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, evaluation_context, _integer)

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, evaluation_context, _float)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: ObjectValue,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[ObjectValue]:
        return self._resolve(flag_key, default_value, evaluation_context, _object)

    def _resolve(
        self,
        flag_key: str,
        default_value: T,
        evaluation_context: EvaluationContext | None,
        convert: Callable[[Any], tuple[bool, T]],
    ) -> FlagResolutionDetails[T]:
        key = evaluation_context.targeting_key if evaluation_context is not None else None
        attributes = dict(evaluation_context.attributes) if evaluation_context is not None else {}
        request = current_context()
        if not key and request is not None:
            # Inside a request turnout routes, its user is the subject, as for `turnout.decide`.
            key, attributes = request.targeting_key, {**request.attributes, **attributes}
        result = evaluate(self.turnout, flag_key, key or None, attributes)
        if result.error_code is not None:
            return FlagResolutionDetails(
                default_value,
                error_code=ErrorCode(result.error_code),
                error_message=result.error_message,
                reason=Reason.ERROR,
                variant=result.variant,
                flag_metadata=result.metadata,
            )
        ok, value = convert(result.value)
        if not ok:
            return FlagResolutionDetails(
                default_value,
                error_code=ErrorCode.TYPE_MISMATCH,
                error_message=f"flag {flag_key!r} holds {result.type} values",
                reason=Reason.ERROR,
                flag_metadata=result.metadata,
            )
        return FlagResolutionDetails(
            value, reason=Reason(result.reason), variant=result.variant, flag_metadata=result.metadata
        )


def changed_flags(before: TurnoutConfig, after: TurnoutConfig) -> list[str]:
    """The keys of flags added, removed or changed between two configurations, sorted."""
    keys = set(before.flags) | set(after.flags)
    return sorted(key for key in keys if before.flags.get(key) != after.flags.get(key))


def _boolean(value: Any) -> tuple[bool, bool]:
    return isinstance(value, bool), bool(value)


def _string(value: Any) -> tuple[bool, str]:
    return isinstance(value, str), str(value)


def _integer(value: Any) -> tuple[bool, int]:
    ok = isinstance(value, int) and not isinstance(value, bool)
    return ok, value if ok else 0


def _float(value: Any) -> tuple[bool, float]:
    # An integer value is a float too (`{ low = 0.5, high = 1 }`), as in OpenFeature's JSON.
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return ok, float(value) if ok else 0.0


def _object(value: Any) -> tuple[bool, ObjectValue]:
    ok = isinstance(value, dict | list)
    return ok, value if ok else {}
