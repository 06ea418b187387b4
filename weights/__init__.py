"""Weight files: safe loading, validation, example weights."""
