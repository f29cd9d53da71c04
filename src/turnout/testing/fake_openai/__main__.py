"""Runs `cli.main`, so that ``python -m turnout.testing.fake_openai`` starts the server."""

from turnout.testing.fake_openai.cli import main

if __name__ == "__main__":
    main()
