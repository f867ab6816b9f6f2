"""`python -m speak.cli`: the same as the `speak` command."""

from speak.cli import main

main()
