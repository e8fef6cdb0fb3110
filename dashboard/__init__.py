"""The Dash web dashboard. Reads stores and scores through toolkit and curation."""
