"""Configuration: the router's frozen settings, the gateway's file format and LiteLLM's import.

`router` holds the typed settings the router runs on; `load` reads a turnout or LiteLLM YAML file
into them; `litellm` translates LiteLLM's `config.yaml`; `yaml_reader` parses YAML under limits.
"""
