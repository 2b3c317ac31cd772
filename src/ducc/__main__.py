"""`python -m ducc` runs the command line."""

from ducc.cli import main

main()
