"""Tests of shiftwatch.dashboards: the Grafana panels' SQL."""
