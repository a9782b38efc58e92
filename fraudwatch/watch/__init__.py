"""`fraudwatch watch`: the long-running service that tails every source into the store, detects and acts."""
