"""Alert emails for the integration team: plain words, counts, where to look; never student data."""
