"""The sliding-window machinery the window rule types share: the frame detector (frame, its small path, its
window arithmetic, its evidence) and the incremental detector."""
