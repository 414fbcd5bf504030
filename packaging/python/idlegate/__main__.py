"""``python -m idlegate``: the same as running the ``idlegate`` command."""

from idlegate._find import main

if __name__ == "__main__":
    main()
