from fraudwatch.cli import program

raise SystemExit(program())
