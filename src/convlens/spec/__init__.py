"""The text front-end: ``.cnn`` descriptions → ``Network`` records with source positions."""

from convlens.spec.parser import parse_file, parse_text

__all__ = ["parse_file", "parse_text"]
