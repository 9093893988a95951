"""The test suite, a package so that its folders may reuse basenames and import ``tests.support`` by name.

pytest's default (prepend) import mode then puts the repo root on ``sys.path`` and imports each test as
``tests.<folder>.<module>``; see tests/support/__init__.py for the shared helpers.
"""
