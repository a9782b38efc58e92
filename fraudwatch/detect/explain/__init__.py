"""`fraudwatch explain`: what a file's lines become and which rules they would fire, without a store (`lines`:
the lines as ingest would parse them; `rules`: the rules run over those events in memory; `run`: both)."""
