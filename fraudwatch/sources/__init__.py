"""Where input comes from: files, folders and globs read in whole-line chunks, with rotation and content
fingerprints, and lines turned into Arrow batches with their bad lines set aside."""
