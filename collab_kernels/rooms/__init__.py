"""Stage 3: server-owned Y documents, their collaborators' websockets, and the file on disk."""
