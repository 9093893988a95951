"""``python -m shiftwatch``: the same CLI, for when the ``shiftwatch`` script is not on PATH."""

from shiftwatch.cli import main

if __name__ == "__main__":
    main()
