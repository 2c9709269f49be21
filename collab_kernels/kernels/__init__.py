"""Stage 1: one shared kernel client per kernel; kernel websockets and documents listen to it."""
