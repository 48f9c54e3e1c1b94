"""`python -m cli`: the same as the `orderflow` command."""

from __future__ import annotations

from cli.app import main

if __name__ == "__main__":
    main()
