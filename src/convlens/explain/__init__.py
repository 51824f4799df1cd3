"""Worked derivations of a report's numbers, as text, Markdown or LaTeX."""
