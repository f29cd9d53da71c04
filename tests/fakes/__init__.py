"""Fake provider servers: each speaks its vendor's wire format and misbehaves on command."""
