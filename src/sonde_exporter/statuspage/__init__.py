"""The status page: /status and /status/{id}, every monitor's state and history as HTML."""
