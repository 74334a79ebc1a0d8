"""Suite-wide test set-up.

Hypothesis is imported here, at collection, on purpose. Its pytest plugin otherwise imports it
during the end-of-run summary of a run that did not use it (one test file, say). pytest
rewrites that import, deep in pluggy's call stack, and CPython 3.11.7's parser then fails with
"SystemError: AST constructor recursion depth mismatch" (fixed in later 3.11 releases). That
run reports exit status 1 after every test passed.
"""

import hypothesis  # noqa: F401  (see the module docstring)
