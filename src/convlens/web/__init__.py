"""The local web workbench (``convlens serve``): a Starlette app, its HTTP API and one page.

Everything the page needs ships in ``static/`` (KaTeX included): no CDN, works offline.
Analyses run in worker processes with a time limit, so a description that expands
without end is refused and the server keeps serving.
"""
