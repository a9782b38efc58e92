"""What runs rule sets: the engine, replays, live detection, the early gates, and the scoring alongside an ingest
(alongside, alongside_scoring, alongside_setup, alongside_pipe, scorer)."""
