"""Deployment files derived from the gateway's routing table (`orderproc.gateway.routes`): the
nginx configuration and the Kubernetes Ingress. `python -m orderproc.deploy --help` renders them."""
