"""The request checks OpenAI's API makes, made by the simulated provider before it answers.

A newcomer trying the demo should meet the same refusals OpenAI would give: a 400
``invalid_request_error`` naming the parameter in ``param``, with OpenAI's error ``code`` and
wording, for out-of-range sampling parameters, malformed ``tools``/``tool_choice``/
``response_format``, too many ``stop`` sequences, ``top_logprobs`` without ``logprobs``, and
tool results that answer no tool call. Only rules OpenAI enforces are checked here; nothing is
refused that OpenAI accepts (``n`` greater than 1 with tools, for one, is allowed).

The refusal is a `turnout.errors.BadRequestError`, the caller's own fault: the router neither
retries it nor falls back, and it counts against no deployment's health.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from turnout.errors import BadRequestError
from turnout.providers.simulated_prompt import message_text
from turnout.providers.simulated_schema import strict_problem

#: How OpenAI names a function and a response format: letters, digits, ``_`` and ``-``.
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TOOL_CHOICES = ("none", "auto", "required")
_FORMATS = ("text", "json_object", "json_schema")


class ParameterRejectedError(BadRequestError):
    """A parameter OpenAI's API refuses, refused with OpenAI's error ``code`` as well."""

    def __init__(self, message: str, *, param: str, code: str | None = None) -> None:
        super().__init__(message, status=400, param=param)
        self.code = code

    def to_openai(self) -> dict[str, Any]:
        body = super().to_openai()
        body["error"]["code"] = self.code
        return body


def check_chat(body: Mapping[str, Any]) -> None:
    """Refuse a chat request OpenAI would refuse, naming the first offending parameter."""
    _sampling(body)
    number(body, "n", 1, 128, integer=True)
    _flag(body, "logprobs")
    top = number(body, "top_logprobs", 0, 20, integer=True)
    if top is not None and body.get("logprobs") is not True:
        raise ParameterRejectedError(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when "
            "'top_logprobs' is used.",
            param="top_logprobs",
        )
    number(body, "max_completion_tokens", 1, None, integer=True)
    _flag(body, "parallel_tool_calls")
    names = _tools(body.get("tools"))
    _tool_choice(body.get("tool_choice"), names)
    _response_format(body.get("response_format"), body.get("messages"))
    _tool_turns(body.get("messages"))


def check_completion(body: Mapping[str, Any]) -> None:
    """Refuse a (legacy) text completion request OpenAI would refuse."""
    _sampling(body)
    number(body, "n", 1, 128, integer=True)
    number(body, "logprobs", 0, 5, integer=True)


def _sampling(body: Mapping[str, Any]) -> None:
    """The parameters chat and text completions share."""
    number(body, "temperature", 0, 2)
    number(body, "top_p", 0, 1)
    number(body, "presence_penalty", -2, 2)
    number(body, "frequency_penalty", -2, 2)
    number(body, "max_tokens", 1, None, integer=True)
    number(body, "seed", None, None, integer=True)
    _stop(body.get("stop"))
    options = body.get("stream_options")
    if options is not None and body.get("stream") is not True:
        raise ParameterRejectedError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )


def number(
    body: Mapping[str, Any],
    name: str,
    low: float | None,
    high: float | None,
    *,
    integer: bool = False,
) -> Any:
    """The parameter's value (None: absent), refused when of the wrong type or out of range."""
    value = body.get(name)
    if value is None:
        return None
    wrong = isinstance(value, bool) or not isinstance(value, int if integer else (int, float))
    if wrong:
        expected = "an integer" if integer else "a number"
        raise _wrong_type(name, expected, value)
    kind = "integer" if integer else "decimal"
    if low is not None and value < low:
        raise ParameterRejectedError(
            f"Invalid '{name}': {kind} below minimum value. Expected a value >= {low:g}, "
            f"but got {value:g} instead.",
            param=name,
            code=f"{kind}_below_min_value",
        )
    if high is not None and value > high:
        raise ParameterRejectedError(
            f"Invalid '{name}': {kind} above maximum value. Expected a value <= {high:g}, "
            f"but got {value:g} instead.",
            param=name,
            code=f"{kind}_above_max_value",
        )
    return value


def _flag(body: Mapping[str, Any], name: str) -> None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise _wrong_type(name, "a boolean", value)


def _stop(value: Any) -> None:
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, list):
        raise _wrong_type("stop", "a string or an array", value)
    _at_most("stop", value, 4)
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise _wrong_type(f"stop[{index}]", "a string", item)


def _at_most(param: str, value: list[Any], most: int) -> None:
    if len(value) > most:
        raise ParameterRejectedError(
            f"Invalid '{param}': array too long. Expected an array with maximum length {most}, "
            f"but got an array with length {len(value)} instead.",
            param=param,
            code="array_above_max_length",
        )


def _tools(value: Any) -> list[str]:
    """The function names the tools declare, each tool checked as OpenAI checks it."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _wrong_type("tools", "an array", value)
    _at_most("tools", value, 128)
    names: list[str] = []
    for index, tool in enumerate(value):
        where = f"tools[{index}]"
        if not isinstance(tool, Mapping):
            raise _wrong_type(where, "an object", tool)
        if tool.get("type") != "function":
            raise _invalid_value(f"{where}.type", tool.get("type"), ("function",))
        function = _required(tool, "function", where)
        if not isinstance(function, Mapping):
            raise _wrong_type(f"{where}.function", "an object", function)
        name = _required(function, "name", f"{where}.function")
        _check_name(name, f"{where}.function.name")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise _wrong_type(f"{where}.function.parameters", "an object", parameters)
        if function.get("strict") is True:
            problem = strict_problem(parameters or {})
            if problem is not None:
                raise ParameterRejectedError(
                    f"Invalid schema for function '{name}': {problem}",
                    param=f"{where}.function.parameters",
                    code="invalid_function_parameters",
                )
        names.append(name)
    return names


def _tool_choice(value: Any, names: list[str]) -> None:
    if value is None:
        return
    if not names:
        raise ParameterRejectedError(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
            "specified.",
            param="tool_choice",
        )
    if isinstance(value, str):
        if value not in _TOOL_CHOICES:
            raise _invalid_value("tool_choice", value, _TOOL_CHOICES)
        return
    if not isinstance(value, Mapping):
        raise _wrong_type("tool_choice", "a string or an object", value)
    if value.get("type") != "function":
        raise _invalid_value("tool_choice.type", value.get("type"), ("function",))
    function = _required(value, "function", "tool_choice")
    name = (
        _required(function, "name", "tool_choice.function")
        if isinstance(function, Mapping)
        else None
    )
    if name not in names:
        raise ParameterRejectedError(
            f"Invalid value for 'tool_choice': function '{name}' is not one of the functions "
            "in 'tools'.",
            param="tool_choice",
            code="invalid_value",
        )


def _response_format(value: Any, messages: Any) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise _wrong_type("response_format", "an object", value)
    kind = value.get("type")
    if kind not in _FORMATS:
        raise _invalid_value("response_format.type", kind, _FORMATS)
    if kind == "json_object" and "json" not in message_text(messages).casefold():
        raise ParameterRejectedError(
            "'messages' must contain the word 'json' in some form, to use 'response_format' of "
            "type 'json_object'.",
            param="messages",
        )
    if kind != "json_schema":
        return
    spec = _required(value, "json_schema", "response_format")
    if not isinstance(spec, Mapping):
        raise _wrong_type("response_format.json_schema", "an object", spec)
    name = _required(spec, "name", "response_format.json_schema")
    _check_name(name, "response_format.json_schema.name")
    schema = spec.get("schema")
    if schema is not None and not isinstance(schema, Mapping):
        raise _wrong_type("response_format.json_schema.schema", "an object", schema)
    if spec.get("strict") is True:
        root = (schema or {}).get("type")
        problem = strict_problem(schema or {})
        if root != "object":
            problem = f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{root}\"'."
        if problem is not None:
            raise ParameterRejectedError(
                f"Invalid schema for response_format '{name}': {problem}",
                param="response_format",
                code="invalid_json_schema",
            )


def _tool_turns(messages: Any) -> None:
    """Every tool result answers a call of the assistant message before it, and every such
    call is answered before the conversation goes on: OpenAI refuses anything else."""
    if not isinstance(messages, list):
        return
    waiting: dict[str, None] = {}
    caller = -1
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, Mapping) else None
        if role == "tool":
            call_id = message.get("tool_call_id")
            if caller < 0:
                raise ParameterRejectedError(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceding message with 'tool_calls'.",
                    param=f"messages.[{index}].role",
                )
            if call_id not in waiting:
                raise ParameterRejectedError(
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in "
                    "'tool_calls' of previous message.",
                    param=f"messages.[{index}].tool_call_id",
                )
            del waiting[call_id]
            continue
        _all_answered(waiting, caller)
        caller = -1
        calls = message.get("tool_calls") if role == "assistant" else None
        if isinstance(calls, list) and calls:
            caller = index
            waiting = {str(c.get("id")): None for c in calls if isinstance(c, Mapping)}
    _all_answered(waiting, caller)


def _all_answered(waiting: dict[str, None], caller: int) -> None:
    if waiting:
        raise ParameterRejectedError(
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(map(str, waiting))}",
            param=f"messages.[{caller}].role",
        )


def _required(holder: Mapping[str, Any], key: str, where: str) -> Any:
    value = holder.get(key)
    if value is None:
        raise ParameterRejectedError(
            f"Missing required parameter: '{where}.{key}'.",
            param=f"{where}.{key}",
            code="missing_required_parameter",
        )
    return value


def _check_name(name: Any, where: str) -> None:
    if not isinstance(name, str):
        raise _wrong_type(where, "a string", name)
    if _NAME.fullmatch(name) is None:
        raise ParameterRejectedError(
            f"Invalid '{where}': string does not match pattern. Expected a string that matches "
            "the pattern '^[a-zA-Z0-9_-]{1,64}$'.",
            param=where,
            code="invalid_value",
        )


def _invalid_value(where: str, value: Any, allowed: tuple[str, ...]) -> ParameterRejectedError:
    listed = ", ".join(f"'{item}'" for item in allowed[:-1])
    supported = f"{listed}, and '{allowed[-1]}'" if listed else f"'{allowed[-1]}'"
    return ParameterRejectedError(
        f"Invalid value: '{value}'. Supported values are: {supported}.",
        param=where,
        code="invalid_value",
    )


def _wrong_type(where: str, expected: str, value: Any) -> ParameterRejectedError:
    return ParameterRejectedError(
        f"Invalid type for '{where}': expected {expected}, but got {_kind(value)} instead.",
        param=where,
        code="invalid_type",
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
