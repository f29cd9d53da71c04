"""Configuration: the router's frozen settings, the gateway's file format and LiteLLM's import.

`router` holds the typed settings the router runs on, and `providers` each provider family's
settings (with `simulated`, the simulated provider's behaviour); `load` reads a turnout or LiteLLM
YAML file into them; `litellm` translates LiteLLM's `config.yaml`; `yaml_reader` parses YAML under
limits; `decoding` and `urls` hold the checks they share.
"""
