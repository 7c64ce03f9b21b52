"""Bookshelf: a small library catalogue, the example app of flask-typed-db.

- :mod:`bookshelf.models`: the tables, plain SQLAlchemy; no Flask.
- :mod:`bookshelf.settings`: the database settings, shared by the app and the worker.
- :mod:`bookshelf.app`: the Flask app factory, views and the ``init-db`` command.
- ``migrations/``: the schema's history for ``flask db`` (Flask-Migrate); ``init-db`` applies it.
- :mod:`bookshelf.worker`: the nightly overdue-loan job, through ``DatabaseCore``; no Flask.
- :mod:`bookshelf.seed`: sample data, written through any session.
"""
