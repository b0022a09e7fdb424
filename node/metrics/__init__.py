"""Prometheus metrics of a node: one small object its parts update cheaply, gauges read
at scrape time, and the ``/metrics`` endpoint of ``scnode run --metrics``."""

from node.metrics._metrics import METRICS as METRICS
from node.metrics._metrics import Histogram as Histogram
from node.metrics._metrics import MetricInfo as MetricInfo
from node.metrics._metrics import Metrics as Metrics
from node.metrics._metrics import Sample as Sample
from node.metrics._metrics import snake_case as snake_case
from node.metrics._server import MetricsServer as MetricsServer
from node.metrics._server import parse_metrics_address as parse_metrics_address
