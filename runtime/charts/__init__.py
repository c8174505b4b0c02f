"""Charts for the derived intraday tables: data API (api.py), plotly figures (render.py), notebook widget."""
