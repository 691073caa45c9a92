"""tiw-push-exporter: Prometheus metrics for Tencent Cloud Interactive Whiteboard push tasks."""

__version__ = "0.1.0"
