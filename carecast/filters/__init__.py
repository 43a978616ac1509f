"""One small filter language for journey conditions and broadcast audiences.

`model` parses the YAML form, `evaluate` answers in Python (a branch inside a
journey), `sql` compiles to a SQLAlchemy expression (an audience of a million
contacts in one indexed query). Both give the same answer; a property test holds
them to it on SQLite and PostgreSQL.
"""
