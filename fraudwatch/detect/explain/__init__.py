"""`fraudwatch explain`: what a file's lines become and which rules they would fire, without a store (`lines`:
a log's lines as ingest would parse them; `csvrows`: a CSV export's rows; `rules`: the rules run over those
events in memory; `run`: all of it for a file or one line)."""
