"""Detection: the rule language (spec, filters, fields, enrich, samples, decide) at this level, the rule types in
`types`, the window machinery they share in `windows`, and what runs rule sets (engine, replay, live, early gates,
scoring alongside an ingest) in `runners`."""
