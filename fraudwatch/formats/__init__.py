"""Line grammars as data: format definitions (rules/formats/*.yaml) compiled to patterns that turn raw lines and CSV
rows into the store's canonical events."""
