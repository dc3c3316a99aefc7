"""What several test modules share: functions, classes and constants, one module per topic.

Test modules import from here, never from one another (tests/test_layers.py checks it); the fixtures
they share are in tests/conftest.py.  ``tests/`` is on ``sys.path`` when pytest runs (as for ``conftest``).
"""
