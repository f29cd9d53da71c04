"""What a deployment's tokens cost: list prices with their sources, lookup by model, and pricing."""
