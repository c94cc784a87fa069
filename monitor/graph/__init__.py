"""Graph API access: the HTTP client, its error taxonomy and usage-header parsing."""

from monitor.graph.client import GraphClient, RetryPolicy, start_accounting
from monitor.graph.errors import ErrorKind, GraphError

__all__ = ["ErrorKind", "GraphClient", "GraphError", "RetryPolicy", "start_accounting"]
