"""Stage 2: documents as kernel listeners; server-side execution writing into the Y document."""
