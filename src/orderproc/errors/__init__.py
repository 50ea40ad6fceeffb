"""Domain errors with stable codes, and their one RFC 7807 renderer."""

from orderproc.errors.exceptions import *  # noqa: F403
from orderproc.errors.exceptions import __doc__ as _tree_doc

__doc__ = _tree_doc
