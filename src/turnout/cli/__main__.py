"""`python -m turnout.cli ...` is the `turnout` command."""

from turnout.cli.main import main

raise SystemExit(main())
