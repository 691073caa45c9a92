"""Everything an official Tencent Cloud SDK would replace: signing, credentials and their chain, the client.

The rest of the exporter talks to Tencent Cloud only through this package. What an error code
means to the exporter is not decided here but in ``exporter.errors``: the client resends only what
its ``RetryPolicy.retryable`` allows, and nothing in this package imports a product module.
"""

DEFAULT_ENDPOINT = "https://tiw.tencentcloudapi.com"
DEFAULT_REGION = "ap-guangzhou"
