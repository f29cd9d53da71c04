"""Alembic's migration scripts for the governance store, shipped inside the package.

`turnout.governance.sql.migrate` runs them at start with no ``alembic.ini``: users never run
Alembic themselves. A schema change is a new module in ``versions/`` whose ``down_revision`` is
the current head, written by hand with `alembic.op` (never generated from the tables at run
time, so that history stays what it was); a test checks that the head matches
`turnout.governance.sql.schema`.
"""
