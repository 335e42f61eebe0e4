"""The dashboard's pages (one module per page) and the overrides they post to."""
