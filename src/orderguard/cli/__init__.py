"""The ``orderguard`` command line: ``app.py`` assembles one module per command.

``demo.py`` is the demo scenario (no output of its own), ``render.py`` draws it with rich, and
``demo_command.py`` is the ``orderguard demo`` command that paces and renders it.
"""
