"""Locates the ``idlegate`` executable that was installed with this package."""

from __future__ import annotations

import os
import sys
import sysconfig


class NotInstalledError(FileNotFoundError):
    """The ``idlegate`` executable is not where pip puts a package's scripts."""


def _candidates() -> list[str]:
    name = "idlegate" + (sysconfig.get_config_var("EXE") or "")
    folders = [sysconfig.get_path("scripts")]
    # A `pip install --user`: the scripts go to the user scheme's folder.
    user_scheme = {"posix": "posix_user", "nt": "nt_user"}.get(os.name)
    if user_scheme is not None and user_scheme in sysconfig.get_scheme_names():
        folders.append(sysconfig.get_path("scripts", scheme=user_scheme))
    # `pip install --target DIR`: DIR/bin beside DIR/idlegate.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folders.append(os.path.join(package_root, "bin"))
    return [os.path.join(folder, name) for folder in folders if folder]


def find_idlegate_bin() -> str:
    """Returns the path of the ``idlegate`` executable installed with this package.

    Raises :class:`NotInstalledError` naming every place it looked.
    """
    candidates = _candidates()
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    looked = ", ".join(candidates)
    raise NotInstalledError(
        f"the idlegate executable is not installed with this package (looked in: {looked}); "
        "reinstall it with: pip install --force-reinstall idlegate"
    )


def main() -> None:
    """Runs the executable with this process's arguments, in place of this process."""
    try:
        path = find_idlegate_bin()
    except NotInstalledError as e:
        print(f"idlegate: {e}", file=sys.stderr)
        sys.exit(1)
    argv = [path, *sys.argv[1:]]
    if os.name == "posix":
        os.execv(path, argv)
    import subprocess

    sys.exit(subprocess.call(argv))
