"""Grafana dashboards (JSON) and the command that provisions them."""
