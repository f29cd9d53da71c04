"""The limits on reading a config file: alias bombs, deep nesting, recursive aliases, size.

Each test loads a real file through `load_config`, both formats, and expects a clear
`ConfigError`; the bombs prove that they are refused early simply by finishing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from turnout.config.load import load_config
from turnout.config.yaml_reader import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, read_yaml
from turnout.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _laughs(indent: str, levels: int = 9) -> str:
    """The classic bomb: each anchor lists the previous one nine times (9**9 strings)."""
    lines = [f'{indent}lol0: &lol0 ["lol"]']
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*lol{level - 1}"] * 9)
        lines.append(f"{indent}lol{level}: &lol{level} [{aliases}]")
    return "\n".join(lines) + "\n"


def _refused_for_aliases(path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert message.startswith(f"{path}:")
    assert f"more than {MAX_NODES} values once its aliases are expanded" in message
    assert "alias bomb" in message


def test_an_alias_bomb_in_a_deployment_is_refused(tmp_path: Path) -> None:
    text = "model_list:\n  - model_name: chat\n    model: m\n    params:\n" + _laughs(" " * 6)
    _refused_for_aliases(_write(tmp_path, text))


def test_an_alias_bomb_in_a_litellm_config_is_refused(tmp_path: Path) -> None:
    """LiteLLM files often keep anchors in a section turnout ignores: the limit applies there."""
    text = (
        "model_list:\n"
        "  - model_name: chat\n"
        "    litellm_params: {model: openai/gpt-4o}\n"
        "x-anchors:\n" + _laughs("  ")
    )
    _refused_for_aliases(_write(tmp_path, text))


def test_a_bomb_of_merge_keys_is_refused(tmp_path: Path) -> None:
    lines = ["anchors:", "  m0: &m0 {a: 1, b: 2}"]
    for level in range(1, 9):
        merged = ", ".join([f"*m{level - 1}"] * 9)
        lines.append(f"  m{level}: &m{level} {{<<: [{merged}], k{level}: {level}}}")
    lines += ["model_list:", "  - {model_name: chat, litellm_params: {model: openai/gpt-4o}}"]
    _refused_for_aliases(_write(tmp_path, "\n".join(lines) + "\n"))


def test_aliases_within_the_limit_are_read_as_usual(tmp_path: Path) -> None:
    deployments = "".join(f"  - {{<<: *base, model: m{index}}}\n" for index in range(1, 200))
    text = (
        "model_list:\n"
        "  - &base {model_name: chat, model: m0, rpm: 10, params: {temperature: 0.5}}\n"
        + deployments
    )
    config = load_config(_write(tmp_path, text), environ={})
    assert len(config.router.model_list) == 200
    assert all(d.params == {"temperature": 0.5} for d in config.router.model_list)


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    text = "model_list: &models\n  - model_name: chat\n    model: m\n    params: {self: *models}\n"
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == (
        f"{path}:4:20: alias *models is inside the value it refers to; "
        "turnout refuses recursive structures"
    )


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000])
def test_nesting_deeper_than_the_limit_is_refused(tmp_path: Path, depth: int) -> None:
    nested = "[" * depth + "1" + "]" * depth
    text = f"model_list:\n  - model_name: chat\n    model: m\n    params: {{deep: {nested}}}\n"
    with pytest.raises(ConfigError, match=f"nested more than {MAX_DEPTH} levels deep"):
        load_config(_write(tmp_path, text), environ={})


def test_nesting_within_the_limit_is_read(tmp_path: Path) -> None:
    # The document, model_list, the entry, params and deep take five levels.
    inner = MAX_DEPTH - 5
    nested = "[" * inner + "1" + "]" * inner
    text = f"model_list:\n  - model_name: chat\n    model: m\n    params: {{deep: {nested}}}\n"
    config = load_config(_write(tmp_path, text), environ={})
    value = config.router.model_list[0].params["deep"]
    for _ in range(inner):
        value = value[0]
    assert value == 1


def test_a_file_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    comment = "# " + "x" * 1000 + "\n"
    text = "model_list:\n  - {model_name: chat, model: m}\n" + comment * (MAX_FILE_BYTES // 1000)
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == (
        f"{path}: larger than {MAX_FILE_BYTES} bytes, the most turnout reads as a config"
    )


@pytest.mark.parametrize("name", ["turnout.yaml", "providers.yaml", "litellm-config.yaml"])
def test_the_examples_are_read_within_the_limits(name: str) -> None:
    data = read_yaml(str(EXAMPLES / name))
    assert isinstance(data, dict)
    assert data["model_list"]
