"""`python -m ducc` runs the command line."""

from ducc.cli.main import main

main()
