"""The HTTP gateway: a thin shell around the router (parse, call the router, write the answer)."""
