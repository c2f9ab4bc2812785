"""HTML pages of the training app: `pages` holds the views, `display` how runs read on a page."""
