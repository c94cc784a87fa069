"""waba-monitor: a Prometheus exporter for WhatsApp Business phone-number health."""

__version__ = "0.1.0"
