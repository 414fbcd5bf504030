"""idlegate: session time-to-live for Streamlit and other interactive data apps.

This package ships the ``idlegate`` command as a native executable. Run it as
``idlegate`` or ``python -m idlegate``; :func:`find_idlegate_bin` returns the
executable's path for tools that start it themselves.
"""

from idlegate._find import find_idlegate_bin

__all__ = ["find_idlegate_bin"]
