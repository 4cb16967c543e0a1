"""The GitHub Action: events, trust, the tracking comment, pull requests and outputs."""
