"""A small module the example notebooks import; also opens as a collaborative text file."""


def greet(who: str) -> None:
    """Print a greeting."""
    print(f"Hello, {who}!")
