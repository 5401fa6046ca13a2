"""A web dashboard over training runs, their conversations and findings: ``python -m dashboard --runs DIR ...``.

``dashboard.app`` (the routes, documented in its docstring), ``dashboard.runs`` (finding and reading run
directories), ``dashboard.views`` and ``dashboard.records`` (what the pages show), ``static/`` (the page: plain HTML,
JavaScript and inline SVG, nothing to build).
"""
