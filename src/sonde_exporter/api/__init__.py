"""The management API: /v1/tcp-monitors, /v1/icmp-monitors and /v1/email-monitors, its keys and scopes, and its OpenAPI document."""
