"""The compliance report: gathered from the ledger and plain run summaries (build), rendered as HTML,
Markdown or JSON (render, with Jinja2 templates and inline SVG charts)."""
