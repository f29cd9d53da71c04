"""Virtual keys, budgets, rate limits and spend."""
