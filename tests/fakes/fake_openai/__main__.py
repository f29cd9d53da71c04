"""Runs `cli.main`, so that ``python -m fakes.fake_openai`` starts the server."""

from fakes.fake_openai.cli import main

if __name__ == "__main__":
    main()
