"""``python -m skmtl``: the same as the ``skmtl`` command."""

from skmtl.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
