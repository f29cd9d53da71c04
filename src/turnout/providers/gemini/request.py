"""OpenAI request bodies into Gemini's ``generateContent`` and ``batchEmbedContents`` bodies.

Sampling parameters go to ``generationConfig`` (``maxOutputTokens``, ``topP``, ``stopSequences``,
``candidateCount`` for ``n``, ``responseMimeType``/``responseSchema`` for ``response_format``,
``thinkingConfig`` for ``reasoning_effort``); tools to ``functionDeclarations`` and
``tool_choice`` to ``toolConfig.functionCallingConfig``. A parameter Gemini cannot honour is a
400 naming it, unless the deployment sets ``drop_params``; ``user`` has no Gemini counterpart
and, being advisory, is left out silently.

The deployment's ``params`` are defaults for the caller's OpenAI parameters, among them Gemini's
own ``safety_settings`` (Gemini's ``safetySettings`` list); its settings' ``extra_body`` is merged
into the native body (the adapter reads the other settings: headers and Vertex AI's project and
location).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from turnout.config.router import Deployment
from turnout.errors import InvalidRequestError, UnsupportedParameterError
from turnout.providers.gemini.messages import conversation
from turnout.providers.gemini.schema import gemini_schema

#: Request fields turnout or the adapter reads for itself.
_COMMON = frozenset({"model", "user", "tags"})
_CHAT = _COMMON | {
    "messages",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "n",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "reasoning_effort",
    "safety_settings",
}
_EMBEDDING = _COMMON | {"input", "dimensions", "encoding_format"}
#: OpenAI parameters whose value asks for nothing Gemini would not do anyway.
_HARMLESS: dict[str, tuple[Any, ...]] = {
    "logprobs": (False,),
    "parallel_tool_calls": (True,),
    "store": (False,),
}
#: Plain renames into ``generationConfig``.
_CONFIG = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "seed": "seed",
}
#: ``tool_choice`` strings and Gemini's function calling modes.
_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
#: ``reasoning_effort`` as Gemini 2.5 thinking budgets, as Gemini's own OpenAI layer maps it.
_BUDGETS = {"none": 0, "low": 1024, "medium": 8192, "high": 24576}

_Unsupported = Callable[[str], None]


def with_defaults(deployment: Deployment, body: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's body, with the deployment's default parameters where the caller set none."""
    merged = dict(body)
    for name, value in deployment.params.items():
        merged.setdefault(name, value)
    return merged


def chat_body(
    deployment: Deployment, body: Mapping[str, Any], extra: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``generateContent`` body for an OpenAI chat request (defaults already applied),
    with `extra` (the deployment's ``extra_body``) merged in."""
    unsupported = _rejecter(deployment)
    _check_fields(body, _CHAT, unsupported)
    system, contents = conversation(body.get("messages"))
    native: dict[str, Any] = {"contents": contents}
    if system is not None:
        native["systemInstruction"] = system
    config = _generation_config(deployment, body, unsupported)
    if config:
        native["generationConfig"] = config
    declarations = _declarations(body.get("tools") or [], unsupported)
    if declarations:
        native["tools"] = [{"functionDeclarations": declarations}]
        tool_config = _tool_config(body.get("tool_choice"), unsupported)
        if tool_config is not None:
            native["toolConfig"] = tool_config
    if body.get("parallel_tool_calls") is False:
        unsupported("parallel_tool_calls")
    safety = body.get("safety_settings")
    if safety is not None:
        native["safetySettings"] = safety
    return _with_extra_body(extra, native)


def embedding_body(
    deployment: Deployment, body: Mapping[str, Any], resource: str, extra_body: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``batchEmbedContents`` body; `resource` is the model's name ("models/<model>"), and
    `extra_body` the deployment's ``extra_body``."""
    _check_fields(body, _EMBEDDING, _rejecter(deployment))
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequestError(
            "gemini: `input` must be a string or a list of strings (Gemini embeds text, "
            "not token arrays)",
            param="input",
        )
    encoding = body.get("encoding_format", "float")
    if encoding not in (None, "float", "base64"):
        raise InvalidRequestError(
            "gemini: `encoding_format` must be float or base64", param="encoding_format"
        )
    extra: dict[str, Any] = {}
    if body.get("dimensions") is not None:
        extra["outputDimensionality"] = body["dimensions"]
    requests = [
        {"model": resource, "content": {"parts": [{"text": text}]}, **extra} for text in texts
    ]
    return _with_extra_body(extra_body, {"requests": requests})


def _generation_config(
    deployment: Deployment, body: Mapping[str, Any], unsupported: _Unsupported
) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name, native in _CONFIG.items():
        if body.get(name) is not None:
            config[native] = body[name]
    cap = body.get("max_completion_tokens", body.get("max_tokens"))
    if cap is not None:
        config["maxOutputTokens"] = cap
    stop = body.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        config["stopSequences"] = stop
    n = body.get("n")
    if n is not None and n != 1:
        config["candidateCount"] = n
    _response_format(body.get("response_format"), config, unsupported)
    effort = body.get("reasoning_effort")
    if effort is not None:
        thinking = _thinking(deployment.model, effort)
        if thinking is None:
            unsupported("reasoning_effort")
        else:
            config["thinkingConfig"] = thinking
    return config


def _response_format(value: Any, config: dict[str, Any], unsupported: _Unsupported) -> None:
    kind = value.get("type") if isinstance(value, Mapping) else value
    if value is None or kind == "text":
        return
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
        return
    spec = value.get("json_schema") if isinstance(value, Mapping) else None
    if kind == "json_schema" and isinstance(spec, Mapping):
        config["responseMimeType"] = "application/json"
        if spec.get("schema") is not None:
            config["responseSchema"] = gemini_schema(spec["schema"], "response_format")
        return
    unsupported("response_format")


def _thinking(model: str, effort: Any) -> dict[str, Any] | None:
    """``thinkingConfig`` for ``reasoning_effort``: a level on Gemini 3, a budget on 2.5."""
    if not isinstance(effort, str):
        return None
    if model.removeprefix("models/").startswith("gemini-3"):
        return {"thinkingLevel": effort}
    budget = _BUDGETS.get(effort)
    return None if budget is None else {"thinkingBudget": budget}


def _declarations(tools: Any, unsupported: _Unsupported) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequestError("gemini: `tools` must be a list", param="tools")
    declarations = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
            unsupported("tools")
            continue
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise InvalidRequestError("gemini: each tool needs a function name", param="tools")
        declaration: dict[str, Any] = {"name": function["name"]}
        if isinstance(function.get("description"), str):
            declaration["description"] = function["description"]
        parameters = function.get("parameters")
        if parameters is not None:
            schema = gemini_schema(parameters, "tools")
            # Gemini rejects an OBJECT schema without properties; a function that takes no
            # arguments is declared without parameters instead.
            if schema.get("properties") or str(schema.get("type", "")).lower() != "object":
                declaration["parameters"] = schema
        declarations.append(declaration)
    return declarations


def _tool_config(choice: Any, unsupported: _Unsupported) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _MODES:
        return {"functionCallingConfig": {"mode": _MODES[choice]}}
    function = choice.get("function") if isinstance(choice, Mapping) else None
    if isinstance(function, Mapping) and isinstance(function.get("name"), str):
        names = [function["name"]]
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": names}}
    unsupported("tool_choice")
    return None


def _check_fields(
    body: Mapping[str, Any], known: frozenset[str], unsupported: _Unsupported
) -> None:
    for name, value in body.items():
        if name in known or value is None or value in _HARMLESS.get(name, ()):
            continue
        unsupported(name)


def _rejecter(deployment: Deployment) -> _Unsupported:
    """What to do with a parameter Gemini cannot honour: drop it, or reject the request."""

    def unsupported(name: str) -> None:
        if not deployment.drop_params:
            raise UnsupportedParameterError(f"gemini: Gemini does not support `{name}`", param=name)

    return unsupported


def _with_extra_body(extra: Mapping[str, Any], native: dict[str, Any]) -> dict[str, Any]:
    """Merge the deployment's ``extra_body`` in: what the adapter set wins, one level deep."""
    for key, value in extra.items():
        mine = native.get(key)
        if isinstance(mine, dict) and isinstance(value, Mapping):
            native[key] = {**value, **mine}
        else:
            native.setdefault(key, value)
    return native
