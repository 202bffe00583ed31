"""The venue simulator: serves scenario quotes over every feed protocol on local WebSockets."""
