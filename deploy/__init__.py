"""Local stand-ins for the services the pipeline runs against, started without Docker.

Each service has its own package (``deploy.kafka``) with a README saying what it guarantees.
"""
