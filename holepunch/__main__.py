"""`python -m holepunch ...` runs the command line (see holepunch.cli)."""

from .cli import main

raise SystemExit(main())
